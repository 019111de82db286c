"""WeChat official accounts: the ``/wechat/{account}`` push route and ``parse``."""

from connectors.wechat.parse import parse
from connectors.wechat.routes import setup_routes
from core.channel import Channel

CHANNEL = Channel(name="wechat", capacity_class="chat", parse=parse, routes=setup_routes)

__all__ = ["CHANNEL", "parse", "setup_routes"]
