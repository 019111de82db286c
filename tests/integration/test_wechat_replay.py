"""Forged WeChat pushes built on a signature seen before: timestamp window, nonce memory, replays.

The signature covers token, timestamp and nonce only, so the gateway refuses stale
timestamps and a seen triple with another body (docs/security.md, "Forged WeChat/Weibo pushes").
"""

from __future__ import annotations

import time

import pytest
from gateway_support import edge_gateway
from wechat_support import OPENID, _accounts, _entries, _refused, signature, text_message

from core import keys


@pytest.fixture
async def edge(sqlite_url, redis_url, tmp_path):
    async with edge_gateway(sqlite_url, redis_url, tmp_path) as gw:
        gw.wechat = await _accounts(gw)
        yield gw


HOUR, YEAR = 3600, 365 * 24 * 3600


async def test_a_seen_triple_with_another_body_and_sender_is_409_and_not_queued(edge):
    # The reported attack: the signature covers token, timestamp and nonce, not the body.
    wc = edge.wechat["plain"]
    q = wc.query()
    first = text_message("真的消息")
    assert await wc.post(first, q) == (200, "success")
    forged = text_message("forged", openid="o-someone-else")
    status, body = await wc.post(forged, q)
    assert (status, body["error"]["code"]) == (409, "replayed") and body["error"]["message"]
    assert [e.payload for e in await _entries(edge)] == [first.encode()]


async def test_an_encrypted_compatible_push_replayed_as_plaintext_is_409(edge):
    # Compatible mode signs the triple twice (signature and msg_signature); the plaintext
    # signature of a seen encrypted push must not carry another, unencrypted body.
    wc = edge.wechat["compat"]
    body, q = wc.encrypted(text_message("密文"), compatible=True)
    assert await wc.post(body, q) == (200, "success")
    plain_q = {k: v for k, v in q.items() if k not in ("encrypt_type", "msg_signature")}
    status, answer = await wc.post(text_message("forged", openid="o-someone-else"), plain_q)
    assert (status, answer["error"]["code"]) == (409, "replayed")
    assert [e.meta["openid"] for e in await _entries(edge)] == [OPENID]


async def test_a_safe_mode_triple_used_for_a_second_ciphertext_is_409(edge):
    # Both are signed with the token: the nonce memory, not the signature, refuses the second.
    wc = edge.wechat["safe"]
    first = text_message("第一条")
    body, q = wc.encrypted(first)
    again, q2 = wc.encrypted(text_message("第二条", openid="o-someone-else"), ts=int(q["timestamp"]), nonce=q["nonce"])
    assert await wc.post(body, q) == (200, "success")
    status, answer = await wc.post(again, q2)
    assert (status, answer["error"]["code"]) == (409, "replayed")
    assert [e.payload for e in await _entries(edge)] == [first.encode()]


@pytest.mark.parametrize("offset", [HOUR, -HOUR, YEAR, -YEAR, 10 * YEAR, -10 * YEAR])
async def test_a_timestamp_outside_the_window_is_401_in_every_mode(edge, offset):
    now = int(time.time())
    plain, safe = edge.wechat["plain"], edge.wechat["safe"]
    await _refused(edge, 401, "stale_timestamp", await plain.post(text_message(), plain.query(ts=now + offset)))
    body, q = safe.encrypted(text_message(), ts=now + offset)
    await _refused(edge, 401, "stale_timestamp", await safe.post(body, q))


async def test_a_timestamp_inside_the_window_is_accepted(edge):
    wc = edge.wechat["plain"]
    assert await wc.post(text_message(), wc.query(ts=int(time.time()) - 240)) == (200, "success")
    assert await edge.xlen("wechat") == 1


@pytest.mark.parametrize("ts", ["", "yesterday", "1.7e9", "-60", "１７００"])
async def test_a_timestamp_that_is_not_a_number_is_400(edge, ts):
    wc = edge.wechat["plain"]
    q = {**wc.query(), "timestamp": ts}
    q["signature"] = signature(ts, q["nonce"])
    await _refused(edge, 400, "bad_timestamp", await wc.post(text_message(), q))


async def test_a_stale_timestamp_is_refused_before_the_body_is_read(edge):
    wc = edge.wechat["plain"]
    await _refused(edge, 401, "stale_timestamp",
                   await wc.post(text_message("长" * 30_000), wc.query(ts=int(time.time()) - YEAR)))


async def test_a_wrong_signature_does_not_use_up_the_nonce(edge):
    # Only a verified triple is remembered: without the token no one can block a nonce.
    wc = edge.wechat["plain"]
    q = wc.query()
    forged = {**q, "signature": signature(q["timestamp"], q["nonce"], token="guess")}
    await _refused(edge, 401, "bad_signature", await wc.post(text_message("forged"), forged))
    assert await wc.post(text_message("真的"), q) == (200, "success")
    assert await edge.xlen("wechat") == 1


async def test_the_nonce_is_remembered_for_the_whole_window(edge):
    wc = edge.wechat["plain"]
    q = wc.query()
    assert await wc.post(text_message(), q) == (200, "success")
    [key] = await edge.redis.keys(keys.push_nonce_key("*", q["timestamp"], q["nonce"]))
    assert 300 < await edge.redis.ttl(key) <= 601
