"""``/healthz``, ``/readyz`` and ``/metrics`` for every role.

HTTP roles (api, gateway, run) serve them on their own port; the other roles (smtp,
normalizer, router) on ``SWITCHBOARD_METRICS_PORT`` when it is set.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import structlog
from aiohttp import web
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from core import metrics
from core.worker import Worker
from ticket_service.store.db import Database

log = structlog.get_logger()
_PROBE_TIMEOUT = 2.0


@dataclass
class Health:
    """What this process depends on: Redis, the database, and its consumer loops."""

    redis: object
    db: Database | None = None
    workers: list[Worker] = field(default_factory=list)
    # A loop blocks at most block_ms per read; a few missed rounds means it is stuck.
    stall_s: float = 15.0

    def __post_init__(self) -> None:
        self.gauges = metrics.StreamGauges(self.redis)

    async def probe(self) -> dict[str, str]:
        """Each dependency's state: "ok" or what is wrong with it."""
        checks: dict[str, str] = {}
        try:
            await asyncio.wait_for(self.redis.ping(), _PROBE_TIMEOUT)
            checks["redis"] = "ok"
        except (RedisError, OSError, TimeoutError) as exc:
            checks["redis"] = f"unreachable: {exc or type(exc).__name__}"
        if self.db is not None:
            try:
                async with asyncio.timeout(_PROBE_TIMEOUT):
                    async with self.db.read() as conn:
                        await conn.execute(text("SELECT 1"))
                checks["database"] = "ok"
            except (SQLAlchemyError, OSError, TimeoutError) as exc:
                checks["database"] = f"unreachable: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        now = time.monotonic()
        for w in self.workers:
            age = now - w.last_tick if w.last_tick else None
            if age is None:
                checks[f"loop:{w.role}"] = "not started"
            elif age > self.stall_s:
                checks[f"loop:{w.role}"] = f"stalled for {age:.0f}s"
            else:
                checks[f"loop:{w.role}"] = "ok"
        return checks


HEALTH = web.AppKey("health", Health)


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    checks = await request.app[HEALTH].probe()
    ready = all(v == "ok" for v in checks.values())
    return web.json_response({"status": "ready" if ready else "unavailable", "checks": checks},
                             status=200 if ready else 503)


async def metrics_endpoint(request: web.Request) -> web.Response:
    health = request.app[HEALTH]
    if time.time() - health.gauges.refreshed_at > 1.0:
        try:
            await asyncio.wait_for(health.gauges.refresh(), _PROBE_TIMEOUT)
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("metrics.refresh_failed", error=str(exc))  # counters still scrape
    body, content_type = metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": content_type})


def setup_ops(app: web.Application, health: Health) -> None:
    app[HEALTH] = health
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_endpoint)


async def serve_ops(health: Health, host: str, port: int) -> web.AppRunner:
    """A small HTTP server with only the ops endpoints (for roles without an HTTP port)."""
    app = web.Application()
    setup_ops(app, health)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    log.info("ops.listening", host=host, port=port)
    return runner
