"""Callback tasks end to end: a reply on a phone ticket is a call to make; the call center's
signed record with ``callback_of`` closes it (through the gateway, the normalizer, the API)."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from gateway_support import running_gateway
from outbox_support import Outbound
from voice_support import CALLER, SECRET, Callcenter, record

from connectors.registry import capacity_classes
from ticket_service.api import setup_api
from ticket_service.store import admin

OUR_NUMBER = "+862161234567"


@pytest.fixture
async def task(system):
    """A missed call's callback ticket and an agent's reply on it: the task, still queued."""
    async with running_gateway(system.bus, system.db, system.tenant) as gw:
        await gw.add_account("voice", "acme-cc", {"secret": SECRET, "region": "CN"})
        async with system.db.write() as conn:
            key = await admin.create_api_key(conn, system.tenant)
        cc = Callcenter(gw)
        assert (await cc.records(record("c-1", "missed")))[0] == 202
        await system.drain()
        [ticket] = await system.tickets()
        app = web.Application()
        setup_api(app, system.db, system.bus.blobs, capacity_classes(), reply_limit=256 * 1024)
        http = TestClient(TestServer(app))
        await http.start_server()
        try:
            world = Outbound(system, http, key, "", ticket.id)
            status, reply = await world.post({"text": "Call Mr Wang back about the refund"})
            assert status == 201
            world.cc, world.reply_id = cc, reply["id"]
            yield world
        finally:
            await http.close()


def callback_call(call_id: str, status: str, task: int | str, **extra) -> dict:
    return {"id": call_id, "status": status, "direction": "outbound", "from": OUR_NUMBER, "to": CALLER,
            "callback_of": task, **extra}


async def _delivery(world) -> dict:
    [reply] = [m for m in (await world.ticket())["messages"] if m["id"] == world.reply_id]
    return reply["delivery"]


async def test_a_reply_on_a_phone_ticket_is_a_queued_callback_task(task):
    delivery = await _delivery(task)
    assert (delivery["status"], delivery["channel"], delivery["callback"]) == ("queued", "voice", {"number": CALLER})
    assert (await task.ticket())["tags"] == ["callback"]


@pytest.mark.parametrize(("status", "expected"), [
    ("completed", ("delivered", None)),
    ("answered", ("delivered", None)),
    ("no-answer", ("failed", {"code": "no-answer", "message": "callback call cb-1: missed"})),
    ("busy", ("failed", {"code": "busy", "message": "callback call cb-1: busy"})),
    ("failed", ("failed", {"code": "failed", "message": "callback call cb-1: failed"})),
])
async def test_the_callback_calls_record_closes_the_task_and_joins_the_ticket(task, status, expected):
    # The record names the reply's message id; it lands on the ticket as a call like any other.
    code, body = await task.cc.records(callback_call("cb-1", status, str(task.reply_id), talk_time=42))
    assert (code, body["status"]) == (202, "accepted")
    await task.system.drain()
    delivery = await _delivery(task)
    assert (delivery["status"], delivery["error"], delivery["attempts"]) == (*expected, 1)
    assert (delivery["sent_at"] is not None) == (expected[0] == "delivered")
    call = (await task.system.messages())[-1]
    assert (call.ticket_id, call.channel, call.direction) == (task.ticket_id, "voice", "in")
    assert call.headers["call"]["callback_of"] == str(task.reply_id)
    assert call.headers["call"]["caller"] == CALLER and call.text.startswith(f"Outbound call to {CALLER}")
    assert len(await task.system.tickets()) == 1


async def test_a_ringing_report_leaves_the_task_open_and_the_final_one_closes_it(task):
    await task.cc.records(callback_call("cb-2", "ringing", task.reply_id))
    await task.system.drain()
    assert (await _delivery(task))["status"] == "queued"
    await task.cc.records(callback_call("cb-2", "completed", task.reply_id))
    await task.system.drain()
    assert ((await _delivery(task))["status"], len(await task.system.messages())) == ("delivered", 3)


async def test_a_closed_task_stays_closed_when_another_call_reports_on_it(task):
    # A second call about the same task changes nothing once the task is done.
    await task.cc.records(callback_call("cb-3", "busy", task.reply_id))
    await task.system.drain()
    await task.cc.records(callback_call("cb-4", "completed", task.reply_id))
    await task.system.drain()
    delivery = await _delivery(task)
    assert (delivery["status"], delivery["error"]["code"], delivery["attempts"]) == ("failed", "busy", 1)


@pytest.mark.parametrize("bad", ["abc", "-3", 0, True, "1" * 19])
async def test_a_callback_of_that_is_not_a_message_id_is_refused_whole(task, bad):
    code, body = await task.cc.records(callback_call("cb-5", "completed", bad))
    assert code == 400
    assert body["error"]["code"] == "invalid_field" and "'callback_of'" in body["error"]["message"]
    assert await task.system.bus.redis.xlen("ingest.voice") == 1  # the missed call only
