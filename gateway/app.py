"""Gateway HTTP app: health and readiness now; push connectors mount their routes here."""

from __future__ import annotations

from aiohttp import web
from redis.exceptions import RedisError

from core.bus import Bus

BUS = web.AppKey("bus", Bus)


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    try:
        await request.app[BUS].redis.ping()
    except (RedisError, OSError) as exc:
        return web.json_response({"status": "unavailable", "redis": str(exc)}, status=503)
    return web.json_response({"status": "ready"})


def setup_gateway(app: web.Application, bus: Bus) -> None:
    app[BUS] = bus
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
