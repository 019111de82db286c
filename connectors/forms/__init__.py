"""Web forms: the ``/forms/{form}`` route (urlencoded, multipart, JSON) and ``parse``."""

from connectors.forms.parse import parse
from connectors.forms.routes import setup_routes

__all__ = ["parse", "setup_routes"]
