"""Gateway HTTP app: push connectors mount their routes here (health lives in ops.health)."""

from __future__ import annotations

from aiohttp import web

from core.bus import Bus

BUS = web.AppKey("bus", Bus)


def setup_gateway(app: web.Application, bus: Bus) -> None:
    app[BUS] = bus
