"""The set-based claims of a round (``router.claim_round``, ``store.assign_sets``) on SQLite
and PostgreSQL: closing many tickets at once, passing over a waiting ticket another
transaction holds, and deciding again when a route's locked candidates were all full."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text, update
from support import make_mail

from connectors.registry import capacity_classes
from core.ids import now_ms
from router.batch import Assigner
from router.claim_round import LOCKED_TRIES
from ticket_service.store import agents as agents_store
from ticket_service.store import assign_sets
from ticket_service.store import decisions as decisions_store
from ticket_service.store.tables import agents, routing_queue, tickets

CLASSES = capacity_classes()


async def _agents(system, n: int, capacity: int, status: str = "online") -> list[int]:
    """``n`` agents; the first idle longest, so candidates come in creation order."""
    ids = []
    async with system.db.write() as conn:
        for i in range(n):
            ids.append(await conn.run_sync(agents_store.create_agent, system.tenant, f"A{i}", f"a{i}@acme.test",
                                           status=status, skills={"refunds": 3}, capacity={"email": capacity}))
            await conn.execute(update(agents).where(agents.c.id == ids[-1]).values(last_assigned_at=i + 1))
    return ids


async def _tickets(system, n: int, first: int = 0) -> list[int]:
    for i in range(first, first + n):
        await system.publish(make_mail(subject=f"case {i}", sender=f"c{i}@example.com")[0])
    await system.drain()
    return [t.id for t in await system.tickets()][first:first + n]


async def _loads(system) -> dict[int, int]:
    async with system.db.read() as conn:
        return dict((await conn.execute(select(agents.c.id, agents.c.load_email).order_by(agents.c.id))).all())


async def _fill(system, agent_ids: list[int], load: int) -> None:
    """Take the agents' room behind the assigner's back, as another router's claims would."""
    async with system.db.write() as conn:
        await conn.execute(update(agents).where(agents.c.id.in_(agent_ids)).values(load_email=load))


async def _queued(system) -> list[int]:
    async with system.db.read() as conn:
        return list((await conn.execute(select(routing_queue.c.ticket_id).order_by(routing_queue.c.ticket_id)))
                    .scalars())


async def _last_decision(system, ticket_id: int):
    async with system.db.read() as conn:
        return (await conn.run_sync(decisions_store.decisions, system.tenant, ticket_id))[-1]


async def test_close_tickets_frees_loads_solves_and_returns_what_it_freed(system):
    al, bo = await _agents(system, 2, capacity=3)
    assigner = Assigner(system.db, 600_000, CLASSES)
    routed = await _tickets(system, 4)
    outcomes = [await assigner.route(t) for t in routed]
    assert [o.agent_id for o in outcomes] == [al, bo, al, bo]
    waiting = (await _tickets(system, 1, first=4))[0]  # never routed: no assignee
    assert await _loads(system) == {al: 2, bo: 2}

    now = now_ms()
    freed = await system.db.run_write(assign_sets.close_tickets, [routed[2], routed[0], routed[1], waiting, 999_999],
                                      "solved", now, CLASSES)
    assert freed == [(routed[0], al), (routed[1], bo), (routed[2], al), (waiting, None)]
    assert await _loads(system) == {al: 0, bo: 1}
    rows = {t.id: t for t in await system.tickets()}
    for ticket_id in (routed[0], routed[1], routed[2], waiting):
        assert (rows[ticket_id].status, rows[ticket_id].closed_at, rows[ticket_id].status_at) == ("solved", now, now)
        assert rows[ticket_id].assigned_at is None
    assert (rows[routed[3]].status, rows[routed[3]].assignee_id) == ("new", bo)

    # Closed already: nothing more is freed, and the first close's times stay.
    again = await system.db.run_write(assign_sets.close_tickets, [routed[0], routed[3]], "solved", now + 5, CLASSES)
    assert again == [(routed[0], None), (routed[3], bo)]
    assert await _loads(system) == {al: 0, bo: 0}
    rows = {t.id: t for t in await system.tickets()}
    assert (rows[routed[0]].closed_at, rows[routed[0]].status_at) == (now, now)
    assert (rows[routed[3]].closed_at, rows[routed[3]].status) == (now + 5, "solved")


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)  # SQLite's one writer holds no row alone
async def test_a_waiting_ticket_another_transaction_holds_is_passed_over_and_stays_queued(system):
    (al,) = await _agents(system, 1, capacity=1, status="offline")
    assigner = Assigner(system.db, 600_000, CLASSES)
    first, second, third = await _tickets(system, 3)
    for ticket_id in (first, second, third):
        assert (await assigner.route(ticket_id)).kind == "queued"
    async with system.db.write() as conn:
        await conn.run_sync(agents_store.set_agent_status, system.tenant, al, "online", now_ms())

    async with system.db.engine.connect() as other:
        await other.begin()
        held = await other.execute(text("SELECT id FROM tickets WHERE id = :id FOR UPDATE"), {"id": first})
        assert held.scalar_one() == first
        assert await assigner.pull(system.tenant, al) == 1
        await other.rollback()

    assert {t.id: t.assignee_id for t in await system.tickets()} == {first: None, second: al, third: None}
    assert await _queued(system) == [first, third]
    assert await _loads(system) == {al: 1}
    decision = await _last_decision(system, second)
    assert (decision.outcome, decision.agent_id, decision.detail["queue"]["position"]) == ("assigned", al, 1)


async def _route_past_full_candidates(system, room_left: bool):
    """Five agents with room 1; the assigner's snapshot is taken, then the room of agents
    1-3 (and 4 unless ``room_left``) goes behind its back: the snapshot still lists them."""
    ids = await _agents(system, LOCKED_TRIES + 2, capacity=1)
    assigner = Assigner(system.db, 600_000, CLASSES, snapshot_ttl_s=3600)
    warm, ticket = await _tickets(system, 2)
    assert (await assigner.route(warm)).agent_id == ids[0]  # reads the snapshot, fills agent 0
    full = ids[1:LOCKED_TRIES + 1] if room_left else ids[1:]
    await _fill(system, full, 1)
    return assigner, ids, ticket, full


async def test_a_route_whose_locked_candidates_are_all_full_is_decided_again_next_round(system):
    assigner, ids, ticket, full = await _route_past_full_candidates(system, room_left=True)
    outcome = await assigner.route(ticket)
    assert (outcome.kind, outcome.agent_id) == ("assigned", ids[-1])
    decision = await _last_decision(system, ticket)
    assert decision.detail["claim"] == {"agent_id": ids[-1], "lost_race": full}
    assert decision.detail["candidates_total"] == 1  # decided again without the full ones
    assert await _loads(system) == {**dict.fromkeys(ids, 1)}
    assert await _queued(system) == []


async def test_a_route_whose_candidates_are_all_full_waits_and_is_pulled_once_room_frees(system):
    assigner, ids, ticket, full = await _route_past_full_candidates(system, room_left=False)
    outcome = await assigner.route(ticket)
    assert outcome.kind == "queued"
    decision = await _last_decision(system, ticket)
    assert decision.detail["claim"] == {"agent_id": None, "lost_race": full}
    assert await _queued(system) == [ticket]

    await _fill(system, [ids[2]], 0)  # one of them finishes a ticket
    assert await assigner.pull(system.tenant, ids[2]) == 1
    async with system.db.read() as conn:
        assignee = (await conn.execute(select(tickets.c.assignee_id).where(tickets.c.id == ticket))).scalar_one()
    assert assignee == ids[2]
    assert await _queued(system) == []
    assert await _loads(system) == dict.fromkeys(ids, 1)
