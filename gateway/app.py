"""Gateway HTTP app: push connectors mount their routes here (health lives in ops.health)."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from connectors.push import DEFAULT_MAX_SKEW_S, GATEWAY, Gateway
from connectors.registry import CHANNELS
from core.accounts import Accounts
from core.bus import Bus
from core.channel import Channel
from core.history import History
from gateway import receipts

BUS = web.AppKey("bus", Bus)


def setup_gateway(app: web.Application, bus: Bus, accounts: Accounts, history: History,
                  max_skew_s: int = DEFAULT_MAX_SKEW_S, channels: Mapping[str, Channel] = CHANNELS) -> None:
    """Mount every channel's routes (handlers find the Gateway under GATEWAY); ``accounts`` is
    the account lookup the routes may use, ``history`` the receipt and conversation reads,
    ``max_skew_s`` the ``push_max_skew_s`` setting."""
    app[BUS] = bus
    app[GATEWAY] = Gateway(bus, accounts, history, bus.blobs, max_skew_s)
    for channel in channels.values():
        if channel.routes is not None:
            channel.routes(app)
    receipts.setup_routes(app)
