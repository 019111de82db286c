"""Gateway HTTP app: push connectors mount their routes here (health lives in ops.health)."""

from __future__ import annotations

from aiohttp import web

from connectors import forms, sdk, sms, voice, wechat, weibo
from connectors.push import DEFAULT_MAX_SKEW_S, GATEWAY, Gateway
from core.bus import Bus
from gateway import receipts
from ticket_service.store.directory import AccountDirectory

BUS = web.AppKey("bus", Bus)

# Each push channel's ``setup_routes(app)``; its handlers find the Gateway under GATEWAY.
CHANNEL_ROUTES = (
    wechat.setup_routes, weibo.setup_routes, forms.setup_routes, sdk.setup_routes, voice.setup_routes,
    sms.setup_routes, receipts.setup_routes,
)


def setup_gateway(app: web.Application, bus: Bus, accounts: AccountDirectory,
                  max_skew_s: int = DEFAULT_MAX_SKEW_S) -> None:
    """Mount every push channel; ``accounts`` is the cached lookup the routes may use,
    ``max_skew_s`` the ``push_max_skew_s`` setting."""
    app[BUS] = bus
    app[GATEWAY] = Gateway(bus, accounts, bus.blobs, max_skew_s)
    for setup in CHANNEL_ROUTES:
        setup(app)
