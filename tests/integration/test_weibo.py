"""Weibo fan-service pushes through the real gateway: verification, types, dedup, bad input."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import time

import pytest
from gateway_support import edge_gateway, running_gateway

from core.envelope import Envelope

SECRET = "weibo-app-secret-acme"
UID, FAN = "1902538057", "2489518277"
_nonces = itertools.count(57155157)


def push(kind="text", text="我的快递丢了", data=None, created="Mon Jul 16 18:09:20 +0800 2012", sender=FAN) -> dict:
    return {"type": kind, "receiver_id": int(UID), "sender_id": int(sender), "created_at": created,
            "text": text, "data": data or {}}


class Weibo:
    """What Weibo's push servers send to an account's URL."""

    def __init__(self, gw, account="acme", secret=SECRET):
        self.gw, self.account, self.secret = gw, account, secret

    def query(self, ts: int | str | None = None, nonce: str | None = None, **extra) -> dict:
        """A fresh signed triple: now in milliseconds (or ``ts``) and a nonce never used before."""
        ts, nonce = str(int(time.time() * 1000) if ts is None else ts), nonce or str(next(_nonces))
        sig = hashlib.sha1("".join(sorted((self.secret, ts, nonce))).encode()).hexdigest()
        return {"signature": sig, "timestamp": ts, "nonce": nonce, **extra}

    async def post(self, doc: dict | bytes, query: dict | None = None):
        body = doc if isinstance(doc, bytes) else json.dumps(doc, ensure_ascii=False).encode()
        async with self.gw.http.post(self.gw.url(f"/weibo/{self.account}"), params=query or self.query(),
                                     data=body, headers={"Content-Type": "application/json"}) as resp:
            is_json = resp.content_type == "application/json"
            return resp.status, await (resp.json() if is_json else resp.text())


@pytest.fixture
async def edge(sqlite_url, redis_url, tmp_path):
    async with edge_gateway(sqlite_url, redis_url, tmp_path) as gw:
        await gw.add_account("weibo", "acme", {"app_secret": SECRET, "uid": UID})
        gw.weibo = Weibo(gw)
        yield gw


def test_signature_matches_the_published_sample():
    # Weibo's access guide: appsecret xyz123xyz, timestamp 1397022061823, nonce 57155157.
    from connectors.weibo.routes import sign

    assert sign("xyz123xyz", "1397022061823", "57155157") == "90e4c22c90a58f26526c2dd5b6c56c8822edeaa1"


async def test_url_verification_echoes_echostr(edge):
    async with edge.http.get(edge.url("/weibo/acme"), params=edge.weibo.query(echostr="dnPdpTZz85")) as resp:
        assert (resp.status, await resp.text()) == (200, "dnPdpTZz85")


async def test_text_push_is_on_the_stream_byte_for_byte(edge):
    doc = push()
    assert await edge.weibo.post(doc) == (200, "")
    [_, fields] = (await edge.redis.xrange("ingest.weibo"))[0]
    env = Envelope.unpack(fields[b"e"])
    assert json.loads(env.payload) == doc and env.meta["uid"] == FAN


async def test_unknown_types_and_subtypes_are_answered_and_ignored(edge):
    assert await edge.weibo.post(push("hongbao")) == (200, "")
    assert await edge.weibo.post(push("event", data={"subtype": "future_thing"})) == (200, "")
    assert await edge.xlen("weibo") == 0


async def _refused(gw, status: int, code: str, result) -> None:
    got, body = result
    assert (got, body["error"]["code"]) == (status, code), body
    assert body["error"]["message"]
    assert await gw.xlen("weibo") == 0


async def test_unknown_account_is_404(edge):
    await _refused(edge, 404, "unknown_account", await Weibo(edge, account="globex").post(push()))


async def test_wrong_signature_is_401(edge):
    await _refused(edge, 401, "bad_signature", await Weibo(edge, secret="guess").post(push()))


async def test_url_verification_with_a_wrong_signature_is_401(edge):
    q = Weibo(edge, secret="guess").query(echostr="x")
    async with edge.http.get(edge.url("/weibo/acme"), params=q) as resp:
        assert (resp.status, (await resp.json())["error"]["code"]) == (401, "bad_signature")


async def test_malformed_json_is_400(edge):
    await _refused(edge, 400, "malformed", await edge.weibo.post(b'{"type": "text",'))


async def test_push_without_sender_is_400(edge):
    doc = push()
    del doc["sender_id"]
    await _refused(edge, 400, "malformed", await edge.weibo.post(doc))


async def test_bad_created_at_is_400(edge):
    await _refused(edge, 400, "malformed", await edge.weibo.post(push(created="yesterday")))


async def test_push_for_another_uid_is_400(edge):
    doc = {**push(), "receiver_id": 42}
    await _refused(edge, 400, "wrong_receiver", await edge.weibo.post(doc))


async def test_oversized_push_is_413(edge):
    await _refused(edge, 413, "too_large", await edge.weibo.post(push(text="长" * 30_000)))


# --- forged pushes built on a signature seen before ------------------------------------------

HOUR_MS, YEAR_MS = 3600_000, 365 * 24 * 3600_000


async def _entries(gw) -> list[Envelope]:
    return [Envelope.unpack(f[b"e"]) for _, f in await gw.redis.xrange("ingest.weibo")]


async def test_a_seen_triple_with_another_body_and_sender_is_409_and_not_queued(edge):
    # The reported attack: the signature covers app secret, timestamp and nonce, not the body.
    q = edge.weibo.query()
    assert await edge.weibo.post(push(), q) == (200, "")
    status, body = await edge.weibo.post(push(text="forged", sender="1111111111"), q)
    assert (status, body["error"]["code"]) == (409, "replayed") and body["error"]["message"]
    assert [e.meta["uid"] for e in await _entries(edge)] == [FAN]


@pytest.mark.parametrize("offset", [HOUR_MS, -HOUR_MS, YEAR_MS, -YEAR_MS, 10 * YEAR_MS, -10 * YEAR_MS])
async def test_a_timestamp_outside_the_window_is_401(edge, offset):
    q = edge.weibo.query(ts=int(time.time() * 1000) + offset)
    await _refused(edge, 401, "stale_timestamp", await edge.weibo.post(push(), q))


async def test_a_timestamp_in_seconds_is_401_since_weibo_signs_milliseconds(edge):
    await _refused(edge, 401, "stale_timestamp", await edge.weibo.post(push(), edge.weibo.query(ts=int(time.time()))))


async def test_a_timestamp_inside_the_window_is_accepted(edge):
    assert await edge.weibo.post(push(), edge.weibo.query(ts=int(time.time() * 1000) - 240_000)) == (200, "")
    assert await edge.xlen("weibo") == 1


@pytest.mark.parametrize("ts", ["", "now", "1397022061823.5", "-1"])
async def test_a_timestamp_that_is_not_a_number_is_400(edge, ts):
    await _refused(edge, 400, "bad_timestamp", await edge.weibo.post(push(), edge.weibo.query(ts=ts)))


async def test_a_wrong_signature_does_not_use_up_the_nonce(edge):
    q = edge.weibo.query()
    forged = Weibo(edge, secret="guess").query(ts=q["timestamp"], nonce=q["nonce"])
    await _refused(edge, 401, "bad_signature", await edge.weibo.post(push(sender="1111111111"), forged))
    assert await edge.weibo.post(push(), q) == (200, "")
    assert [e.meta["uid"] for e in await _entries(edge)] == [FAN]


# --- through the normalizer (SQLite and PostgreSQL) ------------------------------------------


@pytest.fixture
async def flow(system):
    async with running_gateway(system.bus, system.db, system.tenant) as gw:
        await gw.add_account("weibo", "acme", {"app_secret": SECRET, "uid": UID})
        gw.weibo = Weibo(gw)
        gw.system = system
        yield gw


async def test_retries_are_one_message_and_types_join_one_session(flow):
    # Weibo retries after 5 s, three times: the same request, or the push under a fresh triple.
    first, q = push(created="Mon Nov 23 10:00:00 +0800 2026"), flow.weibo.query()
    results = await asyncio.gather(*(flow.weibo.post(first, q) for _ in range(3)), flow.weibo.post(first))
    assert results == [(200, "")] * 4
    for doc in (
        push("text", "第二条", created="Mon Nov 23 10:00:00 +0800 2026"),  # same second, other content
        push("image", "", {"vfid": "821804459", "tovfid": "821804469"}, created="Mon Nov 23 10:00:05 +0800 2026"),
        push("voice", "", {"vfid": "821804461", "tovfid": "821804471"}, created="Mon Nov 23 10:00:06 +0800 2026"),
        push("position", "", {"longitude": "116.308586", "latitude": "39.982525"},
             created="Mon Nov 23 10:00:07 +0800 2026"),
        push("mention", "@acme 客服在吗", created="Mon Nov 23 10:00:08 +0800 2026"),
    ):
        assert await flow.weibo.post(doc) == (200, "")
    await flow.system.drain()
    [ticket] = await flow.system.tickets()
    msgs = await flow.system.messages()
    assert [m.text for m in msgs] == ["我的快递丢了", "第二条", "[image]", "[voice]",
                                      "[position] 39.982525, 116.308586", "@acme 客服在吗"]
    assert {m.ticket_id for m in msgs} == {ticket.id} and {m.sender for m in msgs} == {FAN}
    assert msgs[2].headers["weibo"]["vfid"] == "821804459"


async def test_follow_events_are_recorded_and_a_menu_click_opens_a_ticket(flow):
    await flow.weibo.post(push("event", "关注事件消息", {"subtype": "follow"}))
    await flow.weibo.post(push("event", "取消关注事件消息", {"subtype": "unfollow"},
                               created="Mon Jul 16 18:10:20 +0800 2012"))
    await flow.system.drain()
    assert await flow.system.tickets() == []
    await flow.weibo.post(push("event", "点击", {"subtype": "click", "key": "CONTACT"},
                               created="Mon Jul 16 18:11:20 +0800 2012"))
    await flow.system.drain()
    [ticket] = await flow.system.tickets()
    assert [(m.text, m.auto_reason, m.ticket_id) for m in await flow.system.messages()] == [
        ("[event follow]", "weibo_follow", None),
        ("[event unfollow]", "weibo_unfollow", None),
        ("[event click] CONTACT", "", ticket.id),
    ]
