"""Three router processes and two normalizers at once, while agents keep solving tickets:
no agent ever over capacity, no ticket assigned twice, every ticket served."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time

import pytest
import redis.asyncio as aioredis
from sqlalchemy import func, select
from support import SUPPORT, make_mail, role_env

from connectors.registry import capacity_classes
from core import keys
from core.envelope import Envelope
from core.ids import now_ms
from ticket_service import events
from ticket_service.store import admin
from ticket_service.store import agents as agents_store
from ticket_service.store import tickets as tickets_store
from ticket_service.store.db import Database, migrate
from ticket_service.store.tables import agents, routing_decisions, routing_queue, tickets

SWITCHBOARD = [sys.executable, "-m", "ops.cli"]
TICKETS = 60


@pytest.fixture
async def world(database_url, redis_url):
    db = Database(database_url)
    await migrate(db)
    async with db.write() as conn:
        tenant = await admin.create_tenant(conn, "acme")
        account = await admin.add_account(conn, tenant, "email", SUPPORT)
        for i in range(6):
            await conn.run_sync(agents_store.create_agent, tenant, f"a{i}", f"a{i}@acme.test", status="online",
                                     capacity={"email": 1 + i % 3})
    yield db, tenant, account
    await db.dispose()


def _start(env: dict, folder, roles: tuple[str, ...]) -> tuple[list, list]:
    logs = [open(folder / f"{i}.log", "wb") for i in range(len(roles))]
    procs = [subprocess.Popen([*SWITCHBOARD, role], env=env, stdout=subprocess.DEVNULL, stderr=logs[i])
             for i, role in enumerate(roles)]
    return procs, logs


async def _over_capacity(db: Database) -> list:
    async with db.read() as conn:
        return (await conn.execute(select(agents.c.id).where(
            (agents.c.load_email > agents.c.cap_email) | (agents.c.load_email < 0)))).all()


async def _solve_some(db: Database, bus: aioredis.Redis, tenant: int) -> int:
    """Solve every ticket held right now, as the agents would, and tell the routers."""
    async with db.read() as conn:
        held = (await conn.execute(select(tickets.c.id).where(
            tickets.c.assigned_at.is_not(None), tickets.c.status == "new"))).scalars().all()
    for ticket_id in held:
        async with db.write() as conn:
            freed = await conn.run_sync(tickets_store.close_ticket, ticket_id, "solved", now_ms(), capacity_classes())
        env = events.event_envelope(events.TICKET_CLOSED, "acme", "", "", tenant_id=tenant,
                                    ticket_id=ticket_id, freed_agent_id=freed)
        await bus.xadd(keys.TICKET_EVENTS, {b"e": Envelope.unpack(env.pack()).pack()})
    return len(held)


async def test_three_routers_two_normalizers_never_overfill_or_double_assign(world, database_url, redis_url,
                                                                              tmp_path):
    db, tenant, account = world
    client = aioredis.Redis.from_url(redis_url)
    env = role_env(tmp_path, redis_url, database_url, batch_size=4, router_reconcile_ms=300)
    procs, logs = _start(env, tmp_path, ("router", "router", "router", "normalizer", "normalizer"))
    try:
        for i in range(TICKETS):
            raw = make_mail(subject=f"case {i}", sender=f"c{i}@example.com")[0]
            envelope = Envelope(tenant="acme", channel="email", account=str(account), payload=raw)
            await client.xadd(keys.ingest_stream("email"), {b"e": envelope.pack()})
        deadline, solved = time.monotonic() + 90, 0
        while True:
            assert await _over_capacity(db) == []
            solved += await _solve_some(db, client, tenant)
            if solved == TICKETS:
                break
            assert time.monotonic() < deadline, f"only {solved} of {TICKETS} tickets served"
            await asyncio.sleep(0.2)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        codes = [p.wait(30) for p in procs]
        for log in logs:
            log.close()
        await client.aclose()
    assert codes == [0] * 5, [(tmp_path / f"{i}.log").read_text()[-3000:] for i in range(5)]
    async with db.read() as conn:
        per_ticket = (await conn.execute(
            select(routing_decisions.c.ticket_id, func.count()).where(routing_decisions.c.outcome == "assigned")
            .group_by(routing_decisions.c.ticket_id))).all()
        waiting = (await conn.execute(select(func.count()).select_from(routing_queue))).scalar()
        loads = (await conn.execute(select(agents.c.load_email))).scalars().all()
        statuses = (await conn.execute(select(tickets.c.status, func.count()).group_by(tickets.c.status))).all()
    assert len(per_ticket) == TICKETS and {n for _, n in per_ticket} == {1}
    assert waiting == 0 and loads == [0] * 6
    assert statuses == [("solved", TICKETS)]
