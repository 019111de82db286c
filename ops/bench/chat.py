"""Chat scenario: WeChat safe-mode pushes over HTTP, through the whole pipeline, to assigned tickets.

Concurrent clients (each posting its share one request after another) send N encrypted
text messages from 500 fans, taking turns, to one ``gateway``; one ``normalizer`` threads
each fan's messages into its open session ticket and one ``router`` assigns the tickets to
50 online agents. A short warm-up (account cache, connections, first tickets) runs first
and is left out of every figure.

Reported: accepted msgs/s and the p50/p99 answer time of one HTTP request; end-to-end
msgs/s until every message is a row in ``messages``; ingress→ticket and ingress→assigned
p50/p99 (``ops.bench.latency``) of the measured messages and of the tickets they started;
``cpu_us_per_msg_<role>``: CPU (user + system) each role and Redis used per measured message.
"""

from __future__ import annotations

import time

import aiohttp

from core.ids import now_ms
from ops.bench import latency, wechat
from ops.bench.harness import System, cpu_per_msg
from ticket_service.store.db import Database

FANS = 500


async def run(n: int = 5000, connections: int = 16, database_url: str | None = None,
              fans: int = FANS) -> dict:
    system = System(database_url)
    try:
        url = await wechat.start(system, pipeline=True)
        warm = min(20, n // 4)
        work = wechat.pushes(n, fans=fans)
        db = Database(system.database_url)
        try:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as http:
                await wechat.send(http, url, work[:warm], 1)
                await latency.wait_stored(db, warm, 60, check=system.check)
                await latency.wait_assigned(db, 60, check=system.check)
                since, answers = now_ms(), []
                cpu_before = system.cpu_seconds()
                started = time.perf_counter()
                ok = await wechat.send(http, url, work[warm:], connections, answers)
                took = time.perf_counter() - started
            if ok != n - warm:
                raise RuntimeError(f"{ok} of {n - warm} pushes answered success")
            done = await latency.wait_stored(db, n, check=system.check) - started
            tickets, _ = await latency.wait_assigned(db, check=system.check)
            cpu = cpu_per_msg(cpu_before, system.cpu_seconds(), ok)
            messages = await latency.stored(db)
            to_assigned = await latency.ingress_to_assigned_ms(db, since)
        finally:
            await db.dispose()
        to_ticket = await latency.ingress_to_ticket_ms(system.redis_url, since)
        return {
            "scenario": "chat", "pushes": n, "measured": ok, "fans": fans, "connections": connections,
            "gateways": 1, "normalizers": 1, "routers": 1, "messages": messages, "tickets": tickets,
            "accepted_per_s": round(ok / took, 1), **latency.summary("http", answers),
            "end_to_end_per_s": round(ok / done, 1),
            **latency.summary("ingress_to_ticket", to_ticket),
            **latency.summary("ingress_to_assigned", to_assigned),
            "seconds": round(done, 2), **cpu,
        }
    finally:
        system.stop()

