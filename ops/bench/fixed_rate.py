"""Fixed-rate scenario: latency at a given load, WeChat safe-mode pushes offered open-loop.

``rate × duration`` encrypted pushes are built before the clock starts (client CPU is not
the bottleneck), then message ``i`` is sent at ``t0 + i / rate`` whatever the answers so
far (open loop: a slow answer never delays the next send), spread over several aiohttp
client sessions, to one ``gateway`` with one ``normalizer`` and one ``router`` (50 online
agents with room for every ticket).

Message mix: each message comes from a fan never seen before with probability 0.5 (it
creates a ticket the router has to assign); the other half come from 500 regular fans
in turn, whose first message creates their session ticket and whose later ones thread into
it (appended, no new routing). A short warm-up of 20 new fans runs first and is left out.

Reported: offered and achieved rate (pushes answered ``success`` per second, from the first
scheduled send to the last answer), end-to-end stored msgs/s, the p50/p99 HTTP answer time,
p50/p99/max ingress→ticket and ingress→assigned (``ops.bench.latency``), the time the
pipeline needed after the last answer to store and assign everything (``drain_s``) and how
many sends were late (started more than 50 ms after their scheduled time: the client machine
could not offer the rate, so the figures are for a lower load than asked).

If the pipeline has not caught up ``drain_limit_s`` (120 s) after the last answer, the run is
cut there: ``unfinished`` counts the messages not stored and tickets not assigned, and every
ticket still waiting counts as assigned at the cut, so the latencies are lower bounds.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp

from core.ids import now_ms
from ops.bench import latency, wechat
from ops.bench.harness import System
from ticket_service.store.db import Database

NEW_FANS, FANS, WARM = 0.5, 500, 20
LATE_MS = 50


class _Offer:
    """Open-loop sender: one task per push, started at its scheduled time."""

    def __init__(self, sessions: list[aiohttp.ClientSession], url: str) -> None:
        self.sessions, self.url = sessions, url
        self.answers: list[float] = []
        self.late: list[float] = []
        self.ok = self.errors = 0
        self.last_answer = 0.0

    async def _one(self, i: int, push: tuple[str, dict], due: float) -> None:
        start = time.perf_counter()
        self.late.append((start - due) * 1000)
        try:
            ok = await wechat.post(self.sessions[i % len(self.sessions)], self.url, push)
        except (TimeoutError, aiohttp.ClientError):
            ok = False
        end = time.perf_counter()
        self.answers.append((end - start) * 1000)
        self.last_answer = max(self.last_answer, end)
        self.ok += ok
        self.errors += not ok

    async def run(self, work: list[tuple[str, dict]], rate: float) -> float:
        """Send everything on schedule and wait for every answer; returns t0 (perf_counter)."""
        t0 = time.perf_counter() + 0.05
        tasks = []
        for i, push in enumerate(work):
            due = t0 + i / rate
            if (wait := due - time.perf_counter()) > 0:
                await asyncio.sleep(wait)
            tasks.append(asyncio.create_task(self._one(i, push, due)))
        await asyncio.gather(*tasks)
        return t0


async def run(rate: float = 1000, duration: float = 30, clients: int = 8,
              database_url: str | None = None, drain_limit_s: float = 120) -> dict:
    """``drain_limit_s``: how long to wait after the last answer for the pipeline to catch up."""
    n = max(1, round(rate * duration))
    system = System(database_url)
    try:
        # Pushes are signed when built, before the run: the window must outlast the run.
        url = await wechat.start(system, pipeline=True, max_skew_s=max(300, round(duration) + 300))
        warm = wechat.pushes(WARM, new_fans=1.0)
        work = wechat.pushes(n, fans=FANS, new_fans=NEW_FANS, first=WARM)
        db = Database(system.database_url)
        timeout = aiohttp.ClientTimeout(total=60)
        sessions = [aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64), timeout=timeout)
                    for _ in range(clients)]
        try:
            for i, push in enumerate(warm):
                await wechat.post(sessions[i % clients], url, push)
            await latency.wait_stored(db, WARM, 60, check=system.check)
            await latency.wait_assigned(db, 60, check=system.check)
            offer = _Offer(sessions, url)
            since = now_ms()
            t0 = await offer.run(work, rate)
            deadline = time.perf_counter() + drain_limit_s
            stored_at = await latency.wait_stored(db, WARM + offer.ok, drain_limit_s, fail=False,
                                                  check=system.check)
            tickets, unassigned = await latency.wait_assigned(
                db, max(deadline - time.perf_counter(), 0), fail=False, check=system.check)
            drained, cut = time.perf_counter(), now_ms()
            stored = await latency.stored(db) - WARM
            unstored = offer.ok - stored
            # Cut short: what still waits counts as assigned at the cut (a lower bound).
            to_assigned = await latency.ingress_to_assigned_ms(db, since, cut if unassigned else None)
        finally:
            await asyncio.gather(*(s.close() for s in sessions))
            await db.dispose()
        to_ticket = await latency.ingress_to_ticket_ms(system.redis_url, since)
        span = offer.last_answer - t0
        return {
            "scenario": "fixed_rate", "offered_per_s": rate, "duration_s": duration, "messages": n,
            "new_fans_pct": round(100 * NEW_FANS), "clients": clients, "gateways": 1,
            "normalizers": 1, "routers": 1, "tickets": tickets,
            "achieved_per_s": round(offer.ok / span, 1), "errors": offer.errors,
            "late": sum(late > LATE_MS for late in offer.late), "max_late_ms": round(max(offer.late), 1),
            "stored": stored, "stored_per_s": round(stored / ((stored_at or drained) - t0), 1),
            "unfinished": unstored + unassigned, "unstored": unstored, "unassigned": unassigned,
            **latency.summary("http", offer.answers),
            **latency.summary("ingress_to_ticket", to_ticket, ("p50", "p99", "max")),
            **latency.summary("ingress_to_assigned", to_assigned, ("p50", "p99", "max")),
            "drain_s": round(drained - offer.last_answer, 2), "seconds": round(drained - t0, 2),
        }
    finally:
        system.stop()
