"""Webhooks out end to end: real tickets through the normalizer, the rules worker fanning their
events out and delivering them to a real HTTP receiver, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json

import pytest
from webhook_support import Hooks, Receiver, valid_signature, wait_until

from core import keys
from rules.webhooks import enqueue
from ticket_service import events


@pytest.fixture
async def hooks(system):
    made = []

    async def make(**settings) -> Hooks:
        h = await Hooks(system, **settings).start()
        made.append(h)
        return h

    yield make
    for h in made:
        await h.close()


async def _status(h: Hooks, status: str, count: int = 1):
    async def check():
        rows = await h.deliveries()
        return rows if sum(r.status == status for r in rows) >= count else None
    return await wait_until(check, f"{count} delivery(ies) {status}")


async def test_a_receiver_that_fails_twice_then_succeeds_gets_one_delivered_event_with_a_valid_signature(hooks):
    h = await hooks()
    receiver = await Receiver(statuses=[500, 503]).start()
    try:
        hook = await h.add(receiver.url, ["ticket.created"])
        h.run_rules()
        await h.ticket("Refund for order 1042")
        [row] = await _status(h, "delivered")
    finally:
        await receiver.close()
    assert (row.attempts, row.response_code, row.last_error, row.event_type) == (3, 200, "", "ticket.created")
    assert len(receiver.requests) == 3
    # One delivery id across the retries, the same body each time, a signature that checks out.
    assert {r.headers["X-Switchboard-Delivery"] for r in receiver.requests} == {str(row.id)}
    assert len({r.body for r in receiver.requests}) == 1
    last = receiver.requests[-1]
    assert valid_signature(hook["secret"], last)
    assert not valid_signature(hook["secret"] + "x", last)
    assert last.headers["X-Switchboard-Event"] == "ticket.created"
    assert last.headers["Content-Type"] == "application/json"
    body = json.loads(last.body)
    assert (body["id"], body["event"], body["tenant"]) == (row.id, "ticket.created", "acme")
    assert body["ticket"]["id"] == row.ticket_id and body["ticket"]["number"] == 1
    assert (body["ticket"]["status"], body["ticket"]["subject"]) == ("new", "Refund for order 1042")
    assert body["data"]["ticket_id"] == row.ticket_id and body["data"]["channel"] == "email"
    assert body["created_at"].endswith("Z")


async def test_retries_end_dead_after_the_window_with_the_last_error(hooks):
    h = await hooks(webhook_retry_window_s=0.4)
    receiver = await Receiver(statuses=[502] * 1000).start()
    try:
        await h.add(receiver.url)
        h.run_rules()
        await h.ticket()
        [row] = await _status(h, "dead")
    finally:
        await receiver.close()
    assert row.response_code == 502
    assert row.last_error == "HTTP 502: receiver says no (502)"
    assert row.next_at is None and row.attempts == len(receiver.requests) >= 2


async def test_a_dead_delivery_replayed_is_attempted_again_and_delivered(hooks):
    h = await hooks(webhook_retry_window_s=0.0)
    receiver = await Receiver(statuses=[500]).start()
    try:
        hook = await h.add(receiver.url)
        h.run_rules()
        await h.ticket()
        [dead] = await _status(h, "dead")
        assert dead.attempts == 1
        status, doc = await h.api("POST", f"/webhooks/{hook['id']}/deliveries/{dead.id}/replay")
        assert status == 202 and (doc["id"], doc["status"]) == (dead.id, "pending")
        [row] = await _status(h, "delivered")
        # A delivered one can be replayed too: one more attempt, delivered again.
        status, doc = await h.api("POST", f"/webhooks/{hook['id']}/deliveries/{dead.id}/replay")
        assert status == 202
        await wait_until(lambda: len(receiver.requests) == 3, "the second replay")
        [again] = await _status(h, "delivered")
    finally:
        await receiver.close()
    assert (row.attempts, row.response_code, again.attempts) == (2, 200, 3)
    assert [r.headers["X-Switchboard-Delivery"] for r in receiver.requests] == [str(dead.id)] * 3


async def test_a_hanging_receiver_does_not_delay_another_webhook(hooks):
    h = await hooks(webhook_per_target=2, webhook_concurrency=4, webhook_timeout_s=60.0)
    hanging = await Receiver(hold=asyncio.Event()).start()
    healthy = await Receiver().start()
    try:
        slow = await h.add(hanging.url)
        fine = await h.add(healthy.url)
        h.run_rules()
        for n in range(5):
            await h.ticket(f"question {n}")
        # The healthy receiver's five are delivered while the hanging one still holds its first two.
        rows = await _status(h, "delivered", 5)
        assert sorted((r.webhook_id, r.status) for r in rows) == sorted(
            [(fine["id"], "delivered")] * 5 + [(slow["id"], "pending")] * 5)
        assert len(healthy.requests) == 5 and len(hanging.requests) == 2
        hanging.hold.set()
        await _status(h, "delivered", 10)
    finally:
        await hanging.close()
        await healthy.close()
    assert len(hanging.requests) == 5


async def test_a_redelivered_ticket_event_adds_no_second_delivery(hooks):
    h = await hooks()
    receiver = await Receiver().start()
    try:
        await h.add(receiver.url, ["message.added"])
        env = events.event_envelope(events.MESSAGE_ADDED, "acme", "", "", tenant_id=h.system.tenant, ticket_id=None,
                                    message_id=7)
        # The same event twice on the stream (a redelivery after a crash between commit and ack).
        await h.system.bus.publish(keys.TICKET_EVENTS, env)
        await h.system.bus.publish(keys.TICKET_EVENTS, env)
        await h.system.bus.publish(keys.TICKET_EVENTS, events.event_envelope(
            events.TICKET_CLOSED, "acme", "", "", tenant_id=h.system.tenant, ticket_id=None))
        h.run_rules()
        [row] = await _status(h, "delivered")
        await wait_until(lambda: h.worker.counters["ok"] == 3, "the rules worker to handle all three entries")
    finally:
        await receiver.close()
    assert (row.event_id, row.event_type) == (env.id, "message.added")
    assert len(receiver.requests) == 1
    body = json.loads(receiver.requests[0].body)
    assert body["ticket"] is None and body["data"] == {"ticket_id": None, "message_id": 7}


async def test_events_from_triggers_and_sla_clocks_are_delivered_to_subscribers(hooks):
    h = await hooks()
    receiver = await Receiver().start()
    try:
        await h.add(receiver.url, ["sla.breached", "ticket.updated"])
        for kind, origin in (("sla.breached", "sla"), ("ticket.updated", "trigger"), ("ticket.created", "")):
            await h.system.bus.publish(keys.TICKET_EVENTS, events.event_envelope(
                kind, "acme", "", "", tenant_id=h.system.tenant, ticket_id=None, origin=origin))
        h.run_rules()
        await _status(h, "delivered", 2)
        await wait_until(lambda: h.worker.counters["ok"] == 3, "all three events handled")
    finally:
        await receiver.close()
    got = sorted(r.headers["X-Switchboard-Event"] for r in receiver.requests)
    assert got == ["sla.breached", "ticket.updated"]
    assert len(await h.deliveries()) == 2


async def test_a_name_that_resolves_to_loopback_is_refused_at_delivery_once_the_tenant_disallows_it(hooks):
    h = await hooks(webhook_retry_window_s=0.0)
    receiver = await Receiver().start()
    try:
        await h.add(f"http://localhost:{receiver.port}/hook")
        await h.add(receiver.url)
        await h.allow_private(False)
        h.run_rules()
        await h.ticket()
        rows = await _status(h, "dead", 2)
    finally:
        await receiver.close()
    assert receiver.requests == []
    errors = sorted(r.last_error for r in rows)
    assert errors[0] == "refused: 127.0.0.1 is a loopback address"
    assert errors[1].startswith("refused: localhost resolves to ") and "loopback address" in errors[1]


async def test_a_trigger_call_to_a_bare_url_is_sent_unsigned_and_bad_targets_are_refused(hooks):
    h = await hooks()
    receiver = await Receiver().start()
    tenant = h.system.tenant
    try:
        h.run_rules()
        found = await h.system.db.run_write(enqueue, tenant, receiver.url, "trigger.called", {"trigger": 7})
        [row] = await _status(h, "delivered")
        with pytest.raises(LookupError):
            await h.system.db.run_write(enqueue, tenant, 999, "trigger.called", {})
        with pytest.raises(ValueError, match="must be an http or https URL"):
            await h.system.db.run_write(enqueue, tenant, "file:///etc/passwd", "trigger.called", {})
    finally:
        await receiver.close()
    assert (row.id, row.webhook_id, row.attempts) == (found, None, 1)
    [got] = receiver.requests
    assert "X-Switchboard-Signature" not in got.headers and got.headers["X-Switchboard-Delivery"] == str(found)
    assert json.loads(got.body)["data"] == {"trigger": 7}
