"""Normalizer scenario: normalizers alone on a backlog of chat messages.

The figure the issue compares with the raw bus+store limit: XREADGROUP, parse, dedup,
customer, session threading, ticket and message rows, events, XACK, with nothing else on
the machine's cores. A ``gateway`` takes N WeChat safe-mode pushes from 500 fans in turn
(as in ``chat``) while the ``normalizer`` is paused (SIGSTOP) after a warm-up, so the whole
backlog waits in ``ingest.wechat``; then the normalizer resumes and the clock runs until
every message is a row. Process start-up and the gateway's work are outside the figure.
With ``normalizers`` > 1 each replica is paused and resumed alike: the figure is what a
second normalizer adds to the first on the same database. ``cpu_us_per_msg_normalizer``
is the CPU all replicas used per message while working off the backlog (``_postgres`` the
server's, when it runs on this machine; ``cores_busy`` all of it per second of the run;
``db_waits`` what PostgreSQL's busy sessions waited on, sampled); on
PostgreSQL with pg_stat_statements (``--postgres``) ``db_statements_per_msg`` the statements
they ran per message.
"""

from __future__ import annotations

import time

import aiohttp
import redis.asyncio as aioredis

from ops.bench import latency, wechat
from ops.bench.harness import CPU_CAPS, DbWaits, System, cpu_per_msg
from ticket_service.store.db import Database

WARM = 20


async def run(n: int = 5000, connections: int = 16, database_url: str | None = None,
              normalizers: int = 1) -> dict:
    system = System(database_url)
    try:
        url = await wechat.start(system, pipeline=False)
        first = system.role("normalizer", batch_size=128)
        replicas = [first, *(system.role("normalizer", batch_size=128) for _ in range(normalizers - 1))]
        work = wechat.pushes(n + WARM)
        db = Database(system.database_url)
        try:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as http:
                await wechat.send(http, url, work[:WARM], connections)
                await latency.wait_stored(db, WARM, 60, check=system.check)
                try:
                    await wechat.send_backlog(http, url, work[WARM:], connections, replicas)
                    client = aioredis.Redis.from_url(system.redis_url)
                    try:
                        queued = await client.xlen("ingest.wechat")
                    finally:
                        await client.aclose()
                finally:
                    statements = await system.db_statements()
                    cpu_before = system.cpu_seconds()
                    started, started_wall = time.perf_counter(), time.time()
                    wechat.resume(replicas)
            async with DbWaits(system.database_url) as waits:
                polled = await latency.wait_stored(db, n + WARM, check=system.check) - started
            # The last message's event (published after its batch's commit) ends the run, to the
            # millisecond of its entry id: polling the row count every 50 ms saw the end up to
            # 50 ms late, 7 % of a run of 0.7 s.
            last = await latency.last_event_ms(system.redis_url, n + WARM)
            done = last / 1000 - started_wall if last is not None else polled
            cpu = cpu_per_msg(cpu_before, system.cpu_seconds(), n)
            # Of the machine's cores, how many the run kept busy (every role, Redis, a local PostgreSQL):
            # where replicas stop adding throughput, this is near the core count.
            cores_busy = round(sum(cpu.values()) * n / done / 1e6, 2)
            if statements is not None:
                cpu["db_statements_per_msg"] = round((await system.db_statements() - statements) / n, 2)
            tickets, _ = await latency.tickets_and_unassigned(db)
        finally:
            await db.dispose()
        return {"scenario": "normalizer", "channel": "wechat", "messages": n, "backlog": queued - WARM,
                "tickets": tickets, "normalizers": normalizers, "stored_per_s": round(n / done, 1), "seconds": round(done, 2),
                "cores_busy": cores_busy, **cpu,
                **({"cpu_cap": CPU_CAPS["normalizer"]} if "normalizer" in CPU_CAPS else {}),
                **({"db_waits": waits.shares()} if waits.samples else {})}
    finally:
        system.stop()
