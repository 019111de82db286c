"""The inbox's *Queue* tab is the queue the signed-in agent may take, by the router's own test:
the routing rule's required skills, a trigger's required team, the channel classes the agent
has capacity for; supervisors see every waiting ticket. Real router and rules worker, real HTTP."""

from __future__ import annotations

import asyncio
import re

import pytest
from aiohttp.test_utils import TestServer
from console_support import console_app, person, signed_in
from rules_support import rules_world
from sqlalchemy import select
from support import make_mail

from connectors.registry import capacity_classes
from console import inbox
from router.worker import Router
from ticket_service.store.tables import routing_queue

REFUNDS = {"name": "refunds", "match": {"keywords": ["refund"]}, "required": {"refunds": 2}}
INVOICES = {"name": "invoices to billing", "on": ["ticket.created"],
            "if": {"all": [{"field": "subject", "op": "contains", "value": "invoice"}]},
            "then": [{"type": "require_team", "team": "billing"}]}


def _listed(html: str) -> list[int]:
    return sorted(int(n) for n in re.findall(r'<tr class="ticket [^"]*" data-number="(\d+)"', html))


def _count(html: str, tab: str) -> int:
    match = re.search(rf'id="tab-{tab}"[^>]*>[^<]*<span class="count">(\d+)</span>', html)
    assert match, tab
    return int(match.group(1))


@pytest.fixture
async def queued(system):
    """Three mails waiting (everyone offline): a refund (rule: refunds 2), a parcel (nothing
    asked), an invoice (trigger: team billing). Ann does refunds, Bo is in billing, both on
    email; Cai could do both but takes chats only; a supervisor."""
    async with rules_world(system) as rules:
        status, _ = await rules.call("POST", "/routing/rules", REFUNDS)
        assert status == 201
        await rules.add("trigger", INVOICES)
        await person(system, system.tenant, "ann@acme.test", "agent", "Ann", capacity={"email": 2},
                     skills={"refunds": 2})
        await person(system, system.tenant, "bo@acme.test", "agent", "Bo", capacity={"email": 2},
                     skills={"team:billing": 1})
        await person(system, system.tenant, "cai@acme.test", "agent", "Cai", capacity={"chat": 3},
                     skills={"refunds": 5, "team:billing": 1})
        await person(system, system.tenant, "boss@acme.test", "supervisor", "Boss")
        for subject in ("refund for order 7", "where is my parcel", "invoice copy please"):
            await system.publish(make_mail(subject=subject, sender=f"{subject[:3]}@example.com")[0])
        await system.drain()
        await rules.run_triggers()
        await asyncio.wait_for(Router(system.bus, system.settings, system.db, capacity_classes()).run(drain=True), 60)
        numbers = {t.subject.split()[0]: t.number for t in await system.tickets()}
        async with system.db.read() as conn:
            waiting = {r.ticket_id: r.requirements["required"]
                       for r in await conn.execute(select(routing_queue))}
        by_id = {t.id: t.subject.split()[0] for t in await system.tickets()}
        assert {by_id[i]: req for i, req in waiting.items()} == {
            "refund": {"refunds": 2}, "where": {}, "invoice": {"team:billing": 1}}
        yield numbers


async def test_each_agent_sees_in_queue_only_the_tickets_it_may_take_and_the_count_agrees(system, queued):
    n = queued
    async with TestServer(console_app(system)) as server:
        expected = {"ann@acme.test": [n["refund"], n["where"]], "bo@acme.test": [n["where"], n["invoice"]],
                    "cai@acme.test": [], "boss@acme.test": sorted(n.values())}
        for email, numbers in expected.items():
            async with signed_in(server, email) as who:
                html = await who.page("/?tab=queue")
                assert (_listed(html), _count(html, "queue")) == (sorted(numbers), len(numbers)), email
                # The count shows on the other tabs too, and filters still apply within the queue.
                assert _count(await who.page("/?tab=mine"), "queue") == len(numbers), email
                refund = await who.page("/?tab=queue&q=refund")
                mine = [x for x in numbers if x == n["refund"]]
                assert (_listed(refund), _count(refund, "queue")) == (mine, len(mine)), email


async def test_an_agents_queue_pages_through_its_own_tickets(system, queued, monkeypatch):
    # One a page: Bo's two tickets on two pages, newest activity first, and nothing past them.
    monkeypatch.setattr(inbox, "PAGE", 1)
    async with TestServer(console_app(system)) as server, signed_in(server, "bo@acme.test") as bo:
        first, second = await bo.page("/?tab=queue"), await bo.page("/?tab=queue&page=2")
        assert _listed(first) == [queued["invoice"]] and _listed(second) == [queued["where"]]
        assert "page=2" in first and "page=3" not in second
        assert _listed(await bo.page("/?tab=queue&page=3")) == []
