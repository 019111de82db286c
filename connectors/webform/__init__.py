"""Web forms: the ``/forms/{form}`` route (urlencoded, multipart, JSON) and ``parse``."""

from connectors.webform.parse import parse
from connectors.webform.routes import setup_routes
from core.channel import Channel

CHANNEL = Channel(name="webform", capacity_class="chat", parse=parse, routes=setup_routes)

__all__ = ["CHANNEL", "parse", "setup_routes"]
