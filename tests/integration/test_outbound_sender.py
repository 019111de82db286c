"""The relay and the sender on real Redis and SQLite/PostgreSQL: sent, retried with backoff, failed, relayed again.

The platform is the only stand-in: a channel ``send`` the test scripts (``Platform``), put in
SENDERS for the test.
"""

import pytest
from outbox_support import SECRET, Platform, outbound_world
from sqlalchemy import update

from connectors.relay import Relay
from connectors.sender import Sender
from connectors.senders import SENDERS
from core import keys
from core.outbound import PermanentFailure, Sent, TemporaryFailure
from core.outbox import Relayed, backoff_ms
from ticket_service.store.tables import outbox


@pytest.fixture
async def outbound(system):
    async with outbound_world(system) as world:
        yield world


@pytest.fixture
def platform(monkeypatch) -> Platform:
    platform = Platform()
    monkeypatch.setitem(SENDERS, "email", platform.send)
    return platform


async def _until_settled(outbound, rounds: int = 20) -> None:
    """Relay and drain until no reply is queued (retries wait a few ms of backoff)."""
    import asyncio

    for _ in range(rounds):
        await outbound.send_all()
        if all(r.status != "queued" for r in await outbound.rows()):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("replies still queued")


async def test_a_reply_is_sent_once_with_what_the_outbox_holds_and_announced(outbound, platform):
    _, body = await outbound.post({"text": "Refund sent", "html": "<b>Refund sent</b>"})
    await outbound.send_all()
    [out] = platform.calls
    [row] = await outbound.rows()
    assert (out.to, out.text, out.html, out.handle, out.reply_to, out.attempt) == (
        "zhang.wei@example.cn", "Refund sent", "<b>Refund sent</b>", row.handle, row.reply_to, 1)
    assert (out.account_address, out.subject, out.in_reply_to) == ("help@acme.test", "Re: Refund for order 1042",
                                                                  row.in_reply_to)
    assert (row.status, row.attempts, row.platform_id) == ("sent", 1, "p-1")
    delivery = (await outbound.ticket())["messages"][-1]["delivery"]
    assert (delivery["status"], delivery["attempts"], delivery["error"]) == ("sent", 1, None)
    [event] = await outbound.events("message.sent")
    assert (event["message_id"], event["ticket_id"], event["status"]) == (body["id"], outbound.ticket_id, "sent")


async def test_temporary_failures_are_retried_with_the_same_handle_then_sent(outbound, platform):
    platform.answers = [TemporaryFailure("421", "4.7.0 try again later"),
                        TemporaryFailure("451", "4.3.0 local problem"), Sent("q-9", "delivered")]
    await outbound.post({"text": "Refund sent"})
    await _until_settled(outbound)
    assert [c.attempt for c in platform.calls] == [1, 2, 3]
    assert len({c.handle for c in platform.calls}) == 1  # the same Message-ID on every try
    [row] = await outbound.rows()
    assert (row.status, row.attempts, row.platform_id, row.last_error_code) == ("delivered", 3, "q-9", "")
    assert len(await outbound.events("message.sent")) == 1


async def test_temporary_failures_past_the_channel_limit_fail_with_the_platform_words(outbound, platform):
    outbound.system.settings = outbound.system.settings.replace(send_max_attempts_by_channel="email=3")
    platform.answers = [TemporaryFailure("421", f"4.7.0 busy {i}") for i in range(10)]
    _, body = await outbound.post({"text": "Refund sent"})
    await _until_settled(outbound)
    assert len(platform.calls) == 3
    delivery = (await outbound.ticket())["messages"][-1]["delivery"]
    assert (delivery["status"], delivery["attempts"], delivery["error"]) == (
        "failed", 3, {"code": "421", "message": "4.7.0 busy 2"})
    [event] = await outbound.events("message.failed")
    assert (event["message_id"], event["code"], event["attempts"]) == (body["id"], "421", 3)


async def test_a_permanent_failure_fails_at_once(outbound, platform):
    platform.answers = [PermanentFailure("550", "5.1.1 no such user")]
    await outbound.post({"text": "Refund sent"})
    await _until_settled(outbound)
    [row] = await outbound.rows()
    assert (row.status, row.attempts, row.last_error_code, row.last_error) == ("failed", 1, "550", "5.1.1 no such user")
    assert len(platform.calls) == 1 and len(await outbound.events("message.failed")) == 1


async def test_a_channel_without_a_sender_fails_with_no_sender(outbound, monkeypatch):
    monkeypatch.delitem(SENDERS, "email", raising=False)
    await outbound.post({"text": "Refund sent"})
    await outbound.send_all()
    [row] = await outbound.rows()
    assert (row.status, row.last_error_code) == ("failed", "no_sender")


async def test_a_restarted_relay_relays_again_only_what_lost_its_entry(outbound, platform):
    # Two replies on the stream; Redis loses one entry. A new relay puts back that one alone.
    await outbound.post({"text": "one"})
    await outbound.post({"text": "two"})
    s, redis = outbound.system.settings, outbound.system.bus.redis
    assert await Relay(outbound.system.bus, s, outbound.store).relay_once() == 2
    stream = keys.outbound_stream("email")
    first, second = await redis.xrange(stream)
    await redis.xdel(stream, first[0])
    restarted = Relay(outbound.system.bus, s, outbound.store)
    assert await restarted.recover() == 1
    assert await restarted.relay_once() == 1
    assert await restarted.relay_once() == 0
    assert len(await redis.xrange(stream)) == 2
    await outbound.send_all()
    assert sorted(c.text for c in platform.calls) == ["one", "two"]


async def test_a_retry_that_ends_before_the_relay_marks_the_row_is_relayed_again(outbound, platform):
    # The relay XADDs, a sender takes the entry at once and its attempt fails for now (the row
    # is left for the relay, due after the backoff); only then does the relay mark the row as
    # on the stream. Marked, it would wait for an entry that was handled: never sent.
    platform.answers = [TemporaryFailure("421", "4.7.0 try again later"), Sent("q-3", "sent")]
    await outbound.post({"text": "Refund sent"})
    [due] = await outbound.store.due(2**62, 10)
    from connectors.sender import entry
    [entry_id] = await outbound.system.bus.publish_many(
        [(keys.outbound_stream("email"), entry(due.outbox_id, due.tenant, "email"))])
    await Sender(outbound.system.bus, outbound.system.settings, outbound.store).run(drain=True)
    assert [c.attempt for c in platform.calls] == [1]
    await outbound.store.mark_relayed([Relayed(due.outbox_id, "email", entry_id, due.attempts)])
    [row] = await outbound.rows()
    assert (row.status, row.attempts, row.relayed_at, row.last_error_code) == ("queued", 1, None, "421")
    [again] = await outbound.store.due(2**62, 10)
    assert (again.outbox_id, again.attempts) == (due.outbox_id, 1)
    await _until_settled(outbound)
    assert [c.attempt for c in platform.calls] == [1, 2]
    [row] = await outbound.rows()
    assert (row.status, row.attempts) == ("sent", 2)


async def test_a_duplicate_entry_of_a_sent_reply_sends_nothing(outbound, platform):
    # A relay that crashed after XADD and before marking the row puts it on the stream twice.
    await outbound.post({"text": "once"})
    [due] = await outbound.store.due(2**62, 10)
    from connectors.sender import entry
    for _ in range(2):
        await outbound.system.bus.publish(keys.outbound_stream("email"), entry(due.outbox_id, due.tenant, "email"))
    await Sender(outbound.system.bus, outbound.system.settings, outbound.store).run(drain=True)
    assert len(platform.calls) == 1
    [row] = await outbound.rows()
    assert (row.status, row.attempts) == ("sent", 1)


async def test_a_result_whose_event_was_lost_is_announced_again_when_its_entry_returns(outbound, platform):
    # A sender killed after the commit and before the publish: the row is sent, no event went out,
    # and the entry is still pending. Its redelivery sends nothing and announces the result.
    _, body = await outbound.post({"text": "once"})
    [due] = await outbound.store.due(2**62, 10)
    async with outbound.system.db.write() as conn:
        await conn.execute(update(outbox).where(outbox.c.id == due.outbox_id).values(
            status="sent", attempts=1, platform_id="q-7"))
    from connectors.sender import entry
    await outbound.system.bus.publish(keys.outbound_stream("email"), entry(due.outbox_id, due.tenant, "email"))
    await Sender(outbound.system.bus, outbound.system.settings, outbound.store).run(drain=True)
    assert platform.calls == []
    [event] = await outbound.events("message.sent")
    assert (event["message_id"], event["ticket_id"], event["status"], event["platform_id"], event["attempts"]) == (
        body["id"], outbound.ticket_id, "sent", "q-7", 1)


async def test_a_bad_entry_between_good_ones_goes_to_dead_letters(outbound, platform):
    from core.envelope import Envelope
    await outbound.post({"text": "good"})
    await outbound.system.bus.publish(keys.outbound_stream("email"),
                                      Envelope(tenant="acme", channel="email", account="", payload=b"junk"))
    await outbound.send_all()
    assert [c.text for c in platform.calls] == ["good"]
    [dead] = await outbound.system.bus.redis.xrange(keys.dead_stream(keys.outbound_stream("email")))
    assert b"not an outbox entry" in dead[1][b"error"]


def test_backoff_doubles_from_the_base_up_to_the_cap_with_jitter():
    import random
    rng = random.Random(7)
    waits = [backoff_ms(n, 2.0, 60.0, rng) for n in range(1, 9)]
    for n, wait in enumerate(waits, start=1):
        ceiling = min(60.0, 2.0 * 2 ** (n - 1)) * 1000
        assert ceiling / 2 <= wait <= ceiling


async def test_the_cli_stores_a_reply_and_a_note_and_ops_streams_lists_outbound(outbound, platform):
    # `switchboard ticket reply` queues like the API; `ops streams` shows outbound.email and its group.
    import asyncio
    import subprocess
    import sys

    from support import role_env

    from ops import streams

    s = outbound.system.settings
    env = role_env(s.data_dir, s.redis_url, s.database_url, secret_key=SECRET)
    base = [sys.executable, "-m", "ops.cli", "ticket", "reply", str(outbound.ticket_id), "--tenant", "acme"]
    for extra in (["--text", "From the CLI"], ["--text", "internal", "--note"], ["--text", " "]):
        done = await asyncio.to_thread(subprocess.run, [*base, *extra], env=env, capture_output=True, text=True,
                                       timeout=60)
        if extra[-1] == " ":
            assert done.returncode == 1 and "must not be empty" in done.stderr
        else:
            assert done.returncode == 0, done.stderr
    await outbound.send_all()
    assert [c.text for c in platform.calls] == ["From the CLI"]
    kinds = [(m["kind"], m["delivery"] and m["delivery"]["status"]) for m in (await outbound.ticket())["messages"]
             if m["direction"] == "out"]
    assert kinds == [("reply", "sent"), ("note", None)]
    listed = {x["stream"]: x for x in await streams.streams(outbound.system.bus.redis)}
    [group] = listed["outbound.email"]["groups"]
    assert (listed["outbound.email"]["length"], group["group"], group["pending"]) == (1, "sender", 0)
