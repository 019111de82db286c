"""WeChat official accounts: the ``/wechat/{account}`` push route and ``parse``."""

from connectors.wechat.parse import parse
from connectors.wechat.routes import setup_routes

__all__ = ["parse", "setup_routes"]
