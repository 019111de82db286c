"""A `switchboard rules` process killed with SIGKILL in the middle of the stream, and another
started after it: every ticket.created fires the acknowledgement once, none is lost."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select
from support import make_mail, role_env

from core import keys
from core.ids import now_ms
from rules.definitions import LIMITS, definition
from ticket_service.store import triggers as triggers_store
from ticket_service.store.tables import audit, messages, outbox

SWITCHBOARD = [sys.executable, "-m", "ops.cli", "rules"]
TICKETS = 40
ACK = {"name": "acknowledge", "on": ["ticket.created"],
       "then": [{"type": "reply", "template": "Ticket #{{ ticket.number }} is open."}]}


async def _count(system, table) -> int:
    async with system.db.read() as conn:
        return (await conn.execute(select(func.count()).select_from(table))).scalar()


async def _wait(predicate, limit_s: float = 90.0):
    deadline = asyncio.get_running_loop().time() + limit_s
    while asyncio.get_running_loop().time() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


async def test_killed_mid_stream_and_restarted_each_event_fires_once(system, database_url, redis_url, tmp_path):
    async with system.db.write() as conn:
        await conn.run_sync(triggers_store.add, "trigger", system.tenant, now_ms(), LIMITS["trigger"],
                            **definition(ACK, "trigger"))
    for i in range(TICKETS):
        await system.publish(make_mail(subject=f"order {i}", sender=f"c{i}@example.cn")[0])
    await system.drain()
    env = role_env(tmp_path, redis_url, database_url, batch_size=1, secret_key="kill-test",
                   visibility_timeout_ms=300, reclaim_interval_ms=100)
    left = await _kill_then_restart(system, env, tmp_path / "rules.log")
    assert left > 0, "the process was killed after the stream's end: nothing tested"
    async with system.db.read() as conn:
        rows = (await conn.execute(select(audit.c.ticket_id, audit.c.event_id, audit.c.result))).all()
        replies = (await conn.execute(select(outbox.c.ticket_id))).scalars().all()
        written = (await conn.execute(select(func.count()).select_from(messages)
                                      .where(messages.c.direction == "out"))).scalar()
    assert len(rows) == TICKETS and {r.result for r in rows} == {"applied"}
    assert len({r.ticket_id for r in rows}) == len({r.event_id for r in rows}) == TICKETS
    assert sorted(replies) == sorted(r.ticket_id for r in rows)
    assert written == TICKETS


def _spawn(env: dict, log: Path) -> subprocess.Popen:
    with log.open("ab") as err:
        return subprocess.Popen(SWITCHBOARD, env=env, stdout=subprocess.DEVNULL, stderr=err)


async def _kill_then_restart(system, env: dict, log: Path) -> int:
    """SIGKILL the first process once it fired a few; a second one finishes. Returns what the
    first one left."""
    first = _spawn(env, log)
    try:
        await _wait(lambda: _fired_at_least(system, 3))
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(10)
    left = TICKETS - await _count(system, audit)
    second = _spawn(env, log)
    try:
        await _wait(lambda: _fired_at_least(system, TICKETS))
        await _wait(lambda: _nothing_pending(system))
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(30)
    return left


async def _fired_at_least(system, n: int) -> bool:
    return await _count(system, audit) >= n


async def _nothing_pending(system) -> bool:
    summary = await system.bus.redis.xpending(keys.TICKET_EVENTS, "rules")
    return summary["pending"] == 0
