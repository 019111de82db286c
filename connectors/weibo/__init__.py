"""Weibo fan service (粉丝服务平台): the ``/weibo/{account}`` push route and ``parse``."""

from connectors.weibo.parse import parse
from connectors.weibo.routes import setup_routes

__all__ = ["parse", "setup_routes"]
