"""Voice through the normalizer: one call = one message in any order, threading, callbacks."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import quote

import pytest
from gateway_support import running_gateway
from sqlalchemy import select, update
from voice_support import CALLER, SECRET, TOKEN, Callcenter, cdr, record

from core import keys
from core.envelope import Envelope
from ticket_service.store.tables import customers, identities, tickets

SETTINGS = {"secret": SECRET, "auth_token": TOKEN, "username": "freeswitch", "password": "fs-pass-9",
            "region": "CN"}
REC = "https://api.twilio.com/2010-04-01/Accounts/AC0/Recordings/RE5f2"


@pytest.fixture
async def flow(system):
    async with running_gateway(system.bus, system.db, system.tenant) as gw:
        gw.voice_id = await gw.add_account("voice", "acme-cc", SETTINGS)
        gw.cc = Callcenter(gw)
        gw.system = system
        yield gw


def _twilio_events(cc) -> list[tuple[dict, str]]:
    """The webhooks of one answered Twilio call with a recording and its transcription."""
    return [
        (cc.twilio_call("CA77", "ringing"), ""),
        (cc.twilio_call("CA77", "in-progress"), ""),
        (cc.twilio_call("CA77", "completed", CallDuration="95"), ""),
        ({"AccountSid": "AC0", "CallSid": "CA77", "RecordingSid": "RE5f2", "RecordingUrl": REC,
          "RecordingStatus": "completed", "RecordingDuration": "90"}, "event=recording"),
        ({"AccountSid": "AC0", "CallSid": "CA77", "TranscriptionStatus": "completed",
          "TranscriptionText": "我的快递三天没动了", "RecordingSid": "RE5f2"}, "event=transcript"),
    ]


@pytest.mark.parametrize("order", [[0, 1, 2, 3, 4], [4, 2, 3, 0, 1], [3, 2, 2, 4, 0, 1, 4]],
                         ids=["in-order", "reversed", "duplicated"])
async def test_twilio_events_of_one_call_are_one_message_with_the_final_state(flow, order):
    # Drained after each post: every event is its own transaction, in the order given.
    events = _twilio_events(flow.cc)
    for i in order:
        params, query = events[i]
        assert (await flow.cc.twilio(params, query=query))[0] == 200
        await flow.system.drain()
    [msg] = await flow.system.messages()
    call = msg.headers["call"]
    assert (call["id"], call["status"], call["duration"], call["recording"], call["recording_id"]) == (
        "CA77", "completed", 95, REC, "RE5f2")
    assert (call["caller"], call["transcript"], msg.sender) == (CALLER, "我的快递三天没动了", CALLER)
    assert msg.text == (f"Call from {CALLER}: completed\nduration 1:35\nRecording: {REC}\n"
                        "Transcript: 我的快递三天没动了")
    [ticket] = await flow.system.tickets()
    assert (ticket.channel, ticket.tags, ticket.subject) == ("voice", [], f"Phone call {CALLER}")
    created = [e for e in await flow.system.events() if e["type"] == "ticket.created"]
    assert len(created) == 1


async def test_a_redelivered_bulk_post_changes_nothing(flow):
    batch = {"records": [record("r-1", "answered", agent="li.na"), record("r-1", "completed", duration=42),
                         record("r-2", "ringing", frm="+8613900139000")]}
    await flow.cc.records(batch)
    await flow.cc.records(batch)  # the CTI retried the whole post
    await flow.system.drain()
    one, two = await flow.system.messages()
    assert (one.headers["call"]["status"], one.headers["call"]["agent"], one.headers["call"]["duration"]) == (
        "completed", "li.na", 42)
    assert (two.headers["call"]["status"], two.sender) == ("ringing", "+8613900139000")


async def test_bulk_post_of_1000_records_is_1000_calls(flow):
    batch = [record(f"bulk-{i}", "completed", frm=f"+86138{i:08d}", duration=i, queue="售后")
             for i in range(1000)]
    status, body = await flow.cc.records({"records": batch})
    assert (status, body["records"]) == (202, 1000)
    await flow.system.drain()
    msgs = await flow.system.messages()
    assert len(msgs) == 1000 and len(await flow.system.tickets()) == 1000
    assert [m.headers["call"]["duration"] for m in msgs[:3]] == [0, 1, 2]
    assert msgs[999].sender == "+8613800000999" and msgs[999].headers["call"]["queue"] == "售后"


async def test_numbers_become_e164_with_the_accounts_region_and_one_customer(flow):
    await flow.cc.records(record("local-1", "completed", frm="138 0013 8000"))
    await flow.cc.records(record("intl-1", "completed", frm="+86-138-0013-8000"))
    await flow.system.drain()
    first, second = await flow.system.messages()
    assert (first.sender, second.sender) == (CALLER, CALLER)
    assert first.customer_id == second.customer_id
    async with flow.system.db.read() as conn:
        ids = (await conn.execute(select(identities.c.kind, identities.c.value))).all()
    assert [tuple(i) for i in ids] == [("phone", CALLER)]


async def test_a_call_joins_the_callers_open_ticket_within_the_window_else_opens_one(flow):
    await flow.cc.records(record("c-1", "completed"))
    await flow.system.drain()
    await flow.cc.records(record("c-2", "completed"))
    await flow.system.drain()
    async with flow.system.db.write() as conn:  # the conversation goes quiet past the session window
        await conn.execute(update(tickets).values(updated_at=1))
    await flow.cc.records(record("c-3", "completed"))
    await flow.system.drain()
    first, later = await flow.system.tickets()
    assert [m.ticket_id for m in await flow.system.messages()] == [first.id, first.id, later.id]


@pytest.mark.parametrize("order", [("ringing", "no-answer"), ("no-answer", "ringing")])
async def test_missed_call_tags_the_ticket_for_callback_with_the_vip_priority(flow, order):
    await flow.cc.records(record("known-1", "completed"))
    await flow.system.drain()
    async with flow.system.db.write() as conn:
        await conn.execute(update(customers).values(vip_tier=2))
    for status in order:
        await flow.cc.records(record("missed-1", status, started_at="2026-11-23T09:30:00+08:00"))
        await flow.system.drain()
    [ticket] = await flow.system.tickets()  # appended to the customer's open ticket
    assert (ticket.tags, ticket.priority) == (["callback"], 2)
    _, missed = await flow.system.messages()
    assert (missed.headers["call"]["status"], missed.subject) == ("missed", f"Call back {CALLER} (missed)")
    assert missed.sent_at == 1795397400000


async def test_twilio_voicemail_and_abandoned_queue_calls_open_callback_tickets(flow):
    cc = flow.cc
    await cc.twilio(cc.twilio_call("CA-vm", "ringing"))
    await cc.twilio({"CallSid": "CA-vm", "RecordingUrl": REC, "RecordingSid": "RE5f2", "From": CALLER,
                     "Direction": "inbound"}, query="event=voicemail")
    await cc.twilio(cc.twilio_call("CA-vm", "completed", CallDuration="31"))
    other = "+8613900139000"
    await cc.twilio(cc.twilio_call("CA-q", "in-progress", frm=other))
    await cc.twilio({**cc.twilio_call("CA-q", "in-progress", frm=other), "QueueResult": "hangup",
                     "QueueSid": "QU1", "QueueTime": "185"}, query="event=queue")
    await flow.system.drain()
    vm, queued = await flow.system.messages()
    assert (vm.headers["call"]["status"], vm.headers["call"]["recording"], vm.headers["call"]["duration"]) == (
        "voicemail", REC, 31)
    assert (queued.headers["call"]["status"], queued.headers["call"]["disposition"]) == ("abandoned", "hangup")
    assert [t.tags for t in await flow.system.tickets()] == [["callback"], ["callback"]]
    assert (vm.subject, queued.subject) == (f"Call back {CALLER} (voicemail)", f"Call back {other} (abandoned)")


async def test_freeswitch_cdrs_map_to_calls(flow):
    answered = cdr("a1b2c3d4-0000-4000-8000-000000000001", cc_agent="1001@default", cc_queue="support@default")
    missed = cdr("a1b2c3d4-0000-4000-8000-000000000002", caller="13900139000", answered=False)
    await flow.cc.freeswitch(json.dumps(answered).encode(), "application/json")
    await flow.cc.freeswitch(f"cdr={quote(json.dumps(missed))}".encode(), "application/x-www-form-urlencoded")
    await flow.cc.freeswitch(json.dumps(answered).encode(), "application/json")  # mod_json_cdr retried
    await flow.system.drain()
    one, two = await flow.system.messages()
    call = one.headers["call"]
    assert {k: call[k] for k in ("id", "status", "caller", "callee", "caller_name", "agent", "queue",
                                 "started_at", "answered_at", "ended_at", "duration", "talk_time",
                                 "hangup_cause", "recording")} == {
        "id": "a1b2c3d4-0000-4000-8000-000000000001", "status": "completed", "caller": CALLER,
        "callee": "+864008001234", "caller_name": "王芳", "agent": "1001@default", "queue": "support@default",
        "started_at": 1795420800123, "answered_at": 1795420808000, "ended_at": 1795420868000,
        "duration": 68, "talk_time": 60, "hangup_cause": "NORMAL_CLEARING",
        "recording": "/var/lib/freeswitch/recordings/2026-11-23/a1b2c3d4-0000-4000-8000-000000000001.wav",
    }
    assert (two.headers["call"]["status"], two.headers["call"]["hangup_cause"], two.sender) == (
        "missed", "NO_ANSWER", "+8613900139000")
    first, second = await flow.system.tickets()
    assert (first.tags, second.tags) == ([], ["callback"])


async def test_a_withheld_number_is_a_call_of_its_own(flow):
    await flow.cc.twilio(flow.cc.twilio_call("CA-anon", "completed", frm="+266696687"))
    await flow.cc.twilio(flow.cc.twilio_call("CA-anon2", "completed", frm="Anonymous"))
    await flow.system.drain()
    one, two = await flow.system.messages()
    assert one.customer_id != two.customer_id and one.ticket_id != two.ticket_id
    assert two.headers["call"]["caller"] == "Anonymous"


async def test_a_record_that_cannot_be_parsed_goes_to_dead_letters_between_good_ones(flow):
    # Poison pill: a voice entry of an unknown source, between two good posts.
    await flow.cc.records(record("good-1", "completed"))
    env = Envelope(tenant="acme", channel="voice", account=str(flow.voice_id),
                   payload=b"{}", content_type="application/json", meta={"source": "fax"})
    await flow.system.bus.publish(keys.ingest_stream("voice"), env)
    await flow.cc.records(record("good-2", "completed", frm="+8613900139000"))
    await flow.system.drain()
    assert [m.headers["call"]["id"] for m in await flow.system.messages()] == ["good-1", "good-2"]
    [(_, fields)] = await flow.system.bus.redis.xrange(keys.dead_stream(keys.ingest_stream("voice")))
    assert Envelope.unpack(fields[b"e"]).id == env.id



async def test_two_normalizers_racing_on_the_events_of_one_call_keep_every_field(flow):
    # Each report is its own post (own stream entry), handled by whichever worker gets it first.
    reports = [record("race-1", "ringing"), record("race-1", "answered", agent="li.na"),
               record("race-1", "completed", duration=61), record("race-1", "completed", recording_url=REC),
               record("race-1", "completed", transcript="退款进度")]
    for report in reports:
        await flow.cc.records(report)
    await asyncio.gather(flow.system.drain(), flow.system.drain())
    [msg] = await flow.system.messages()
    call = msg.headers["call"]
    assert (call["status"], call["agent"], call["duration"], call["recording"], call["transcript"]) == (
        "completed", "li.na", 61, REC, "退款进度")
