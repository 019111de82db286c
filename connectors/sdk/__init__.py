"""Mobile SDK: signed JSON messages, uploads and conversation reads under ``/sdk/v1``."""

from connectors.sdk.parse import parse
from connectors.sdk.routes import setup_routes

__all__ = ["parse", "setup_routes"]
