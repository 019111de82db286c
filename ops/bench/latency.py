"""What the scenarios read back after a run: row counts, waits and ingress latencies.

Every latency starts at the envelope's ``received_at`` (ms, taken when the connector
accepted the message), which the normalizer stores as ``messages.created_at``:

* ingress→ticket: the ``ticket.events`` entry's stream time (Redis clock, ms) minus the
  event's ``received_at`` — the message was committed to a ticket and announced;
* ingress→assigned: ``tickets.assigned_at`` (the router's decision time) minus the
  ``created_at`` of the ticket's first message (the lowest message id on the ticket).
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from sqlalchemy import func, select

from core import keys
from core.envelope import Envelope
from ticket_service.events import read_event
from ticket_service.store.db import Database
from ticket_service.store.tables import messages, tickets

_CLOSED = ("solved", "closed")


def percentile(values: list[float], q: int) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def summary(prefix: str, values: list[float], qs: tuple[str, ...] = ("p50", "p99")) -> dict:
    """``{prefix}_p50_ms: …, {prefix}_p99_ms: …`` (and ``_max_ms``), rounded to 0.1 ms."""
    out = {}
    for q in qs:
        value = max(values, default=float("nan")) if q == "max" else percentile(values, int(q[1:]))
        out[f"{prefix}_{q}_ms"] = None if math.isnan(value) else round(float(value), 1)
    return out


async def stored(db: Database) -> int:
    """Rows in ``messages``."""
    async with db.read() as conn:
        return (await conn.execute(select(func.count(messages.c.id)))).scalar_one()


async def tickets_and_unassigned(db: Database) -> tuple[int, int]:
    """Tickets in all, and open tickets the router has not assigned yet."""
    async with db.read() as conn:
        total = (await conn.execute(select(func.count(tickets.c.id)))).scalar_one()
        waiting = (await conn.execute(select(func.count(tickets.c.id)).where(
            tickets.c.assigned_at.is_(None), tickets.c.status.not_in(_CLOSED)))).scalar_one()
    return total, waiting


async def wait_until(done: Callable[[], Awaitable[bool]], limit_s: float, what: str,
                     every_s: float = 0.05, fail: bool = True,
                     check: Callable[[], None] | None = None) -> float | None:
    """Poll ``done`` until it holds; returns ``time.perf_counter()`` at that moment.

    After ``limit_s``: raise, or with ``fail=False`` return None. ``check`` runs on every
    poll and may raise (``System.check``: a role process died).
    """
    deadline = time.perf_counter() + limit_s
    while not await done():
        if check is not None:
            check()
        if time.perf_counter() > deadline:
            if fail:
                raise RuntimeError(f"{what} not within {limit_s:.0f} s")
            return None
        await asyncio.sleep(every_s)
    return time.perf_counter()


async def wait_stored(db: Database, count: int, limit_s: float = 600, fail: bool = True,
                      check: Callable[[], None] | None = None) -> float | None:
    async def done() -> bool:
        return await stored(db) >= count
    return await wait_until(done, limit_s, f"{count} messages stored", fail=fail, check=check)


async def last_event_ms(redis_url: str, events: int, limit_s: float = 10) -> int | None:
    """The time (ms, from its entry id) of the ``events``-th entry of ``ticket.events``, once
    there are that many; None if they do not come within ``limit_s``."""
    client = aioredis.Redis.from_url(redis_url)

    async def all_there() -> bool:
        return await client.xlen(keys.TICKET_EVENTS) >= events
    try:
        if await wait_until(all_there, limit_s, f"{events} events", every_s=0.005, fail=False) is None:
            return None
        [(entry_id, _)] = await client.xrevrange(keys.TICKET_EVENTS, count=1)
        return int(entry_id.split(b"-")[0])
    finally:
        await client.aclose()


async def wait_assigned(db: Database, limit_s: float = 600, fail: bool = True,
                        check: Callable[[], None] | None = None) -> tuple[int, int]:
    """Wait until every open ticket has an assignee; returns (tickets, still unassigned)."""
    counts = (0, 0)

    async def done() -> bool:
        nonlocal counts
        counts = await tickets_and_unassigned(db)
        return counts[1] == 0
    await wait_until(done, limit_s, "every ticket assigned", every_s=0.1, fail=fail, check=check)
    return counts


async def ingress_to_ticket_ms(redis_url: str, since_ms: int = 0) -> list[float]:
    """Per ticket event (created, appended, reopened): stream time minus ingress time."""
    client = aioredis.Redis.from_url(redis_url)
    out: list[float] = []
    try:
        start = "-"
        while entries := await client.xrange(keys.TICKET_EVENTS, min=start, count=5000):
            for entry_id, fields in entries:
                event = read_event(Envelope.unpack(fields[b"e"]))
                received = event.get("received_at")
                if isinstance(received, int) and received >= since_ms:
                    out.append(int(entry_id.split(b"-")[0]) - received)
            start = "(" + entries[-1][0].decode()
    finally:
        await client.aclose()
    return out


async def ingress_to_assigned_ms(db: Database, since_ms: int = 0,
                                 waiting_at: int | None = None) -> list[float]:
    """Per assigned ticket: ``assigned_at`` minus its first message's ingress time.

    ``since_ms`` leaves out tickets whose first message arrived before it (a warm-up).
    ``waiting_at`` (ms): also count open tickets not assigned yet, as if assigned then — a
    lower bound for a run cut short, which makes the percentiles lower bounds too.
    """
    first = (select(messages.c.ticket_id, func.min(messages.c.id).label("message_id"))
             .where(messages.c.ticket_id.is_not(None)).group_by(messages.c.ticket_id).subquery())
    if waiting_at is None:
        assigned, counted = tickets.c.assigned_at, tickets.c.assigned_at.is_not(None)
    else:
        assigned = func.coalesce(tickets.c.assigned_at, waiting_at)
        counted = tickets.c.assigned_at.is_not(None) | tickets.c.status.not_in(_CLOSED)
    query = (select(assigned - messages.c.created_at)
             .select_from(tickets.join(first, first.c.ticket_id == tickets.c.id)
                          .join(messages, messages.c.id == first.c.message_id))
             .where(counted, messages.c.created_at >= since_ms))
    async with db.read() as conn:
        return [float(v) for v in (await conn.execute(query)).scalars().all()]
