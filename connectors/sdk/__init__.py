"""Mobile SDK: signed JSON messages, uploads and conversation reads under ``/sdk/v1``."""

from connectors.sdk.parse import parse
from connectors.sdk.routes import setup_routes
from core.channel import Channel

CHANNEL = Channel(name="sdk", capacity_class="chat", parse=parse, routes=setup_routes)

__all__ = ["CHANNEL", "parse", "setup_routes"]
