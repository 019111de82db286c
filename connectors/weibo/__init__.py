"""Weibo fan service (粉丝服务平台): the ``/weibo/{account}`` push route and ``parse``."""

from connectors.weibo.parse import parse
from connectors.weibo.routes import setup_routes
from core.channel import Channel

CHANNEL = Channel(name="weibo", capacity_class="chat", parse=parse, routes=setup_routes)

__all__ = ["CHANNEL", "parse", "setup_routes"]
