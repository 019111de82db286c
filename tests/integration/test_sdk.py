"""The mobile SDK protocol (docs/sdk.md) through the real gateway with a real aiohttp client."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid

import pytest
from gateway_support import edge_gateway, running_gateway
from sqlalchemy import select

from core import keys
from core.envelope import Envelope
from core.ids import now_ms
from ticket_service.store import tickets as store
from ticket_service.store.tables import identities

SECRET = "app-secret-7f3a9c"


class App:
    """A mobile app (or its backend) speaking the SDK protocol as docs/sdk.md describes it."""

    def __init__(self, gw, key: str = "acme-ios", secret: str = SECRET) -> None:
        self.gw, self.key, self.secret = gw, key, secret

    def headers(self, content: bytes, skew: int = 0, **extra) -> dict:
        ts = str(int(time.time()) + skew)
        sig = hmac.new(self.secret.encode(), ts.encode() + b"." + content, hashlib.sha256).hexdigest()
        return {"X-SB-Timestamp": ts, "X-SB-Signature": sig, **extra}

    async def send(self, doc: dict | bytes, headers: dict | None = None, skew: int = 0):
        body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        if headers is None:
            headers = self.headers(body, skew, **{"Content-Type": "application/json"})
        async with self.gw.http.post(self.gw.url(f"/sdk/v1/apps/{self.key}/messages"), data=body,
                                     headers=headers) as resp:
            return resp.status, await resp.json()

    async def upload(self, data: bytes, filename: str, ctype: str, headers: dict | None = None):
        if headers is None:
            headers = self.headers(data, **{"Content-Type": ctype, "X-SB-Filename": filename})
        async with self.gw.http.post(self.gw.url(f"/sdk/v1/apps/{self.key}/uploads"), data=data,
                                     headers=headers) as resp:
            return resp.status, await resp.json()

    async def thread(self, conversation: str, user: str | None, sign: bool = True):
        path = f"/sdk/v1/apps/{self.key}/conversations/{conversation}/messages"
        if user is not None:
            path += f"?user={user}"
        headers = self.headers(path.encode()) if sign else {}
        async with self.gw.http.get(self.gw.url(path), headers=headers) as resp:
            return resp.status, await resp.json()


def message(text="应用里怎么退款？", conversation="conv-1", user="u-1001", **extra) -> dict:
    return {"id": str(uuid.uuid4()), "conversation": conversation, "text": text,
            "user": {"id": user, "name": "王芳"}, **extra}


@pytest.fixture
async def edge(sqlite_url, redis_url, tmp_path):
    async with edge_gateway(sqlite_url, redis_url, tmp_path) as gw:
        await gw.add_account("sdk", "acme-ios", {"secret": SECRET, "max_upload_size": 2048})
        gw.app = App(gw)
        yield gw


async def _entries(gw) -> list[Envelope]:
    return [Envelope.unpack(f[b"e"]) for _, f in await gw.redis.xrange("ingest.sdk")]


async def test_signed_message_is_queued_byte_for_byte(edge):
    doc = message()
    status, body = await edge.app.send(doc)
    assert (status, body["status"]) == (202, "accepted")
    [env] = await _entries(edge)
    assert json.loads(env.payload) == doc and env.id != body["receipt"]
    assert json.loads(await edge.redis.get(keys.receipt_key(body["receipt"])))["envelope_id"] == env.id
    assert env.meta["client_id"] == doc["id"]


async def test_a_retry_of_one_uuid_answers_the_same_receipt_and_queues_nothing(edge):
    doc = message()
    first = await edge.app.send(doc)
    again = await edge.app.send(doc)
    assert again == (200, first[1])
    assert await edge.xlen("sdk") == 1


async def test_concurrent_retries_all_get_one_receipt(edge):
    doc = message()
    results = await asyncio.gather(*(edge.app.send(doc) for _ in range(3)))
    assert len({r[1]["receipt"] for r in results}) == 1


async def test_upload_then_message_carries_the_stored_file(edge):
    status, up = await edge.app.upload(b"\x89PNG screenshot", "%E6%88%AA%E5%9B%BE.png", "image/png")
    assert (status, up["size"]) == (201, 15)
    assert (await edge.app.send(message(attachments=[up["upload"]])))[0] == 202
    [env] = await _entries(edge)
    [meta] = json.loads(env.meta["uploads"])
    assert (meta["filename"], meta["content_type"], meta["size"]) == ("截图.png", "image/png", 15)
    assert await edge.bus.blobs.get(meta["blob_key"]) == b"\x89PNG screenshot"


# --- bad input: status, a body naming the problem, nothing queued ----------------------------


async def _refused(gw, status: int, code: str, result) -> None:
    got, body = result
    assert (got, body["error"]["code"]) == (status, code), body
    assert body["error"]["message"]
    assert await gw.xlen("sdk") == 0


async def test_unknown_app_is_404(edge):
    await _refused(edge, 404, "unknown_account", await App(edge, key="acme-android").send(message()))


async def test_unsigned_message_is_401(edge):
    await _refused(edge, 401, "missing_signature", await edge.app.send(message(), headers={"X-Other": "1"}))


async def test_message_signed_with_another_secret_is_401(edge):
    await _refused(edge, 401, "bad_signature", await App(edge, secret="wrong").send(message()))


async def test_tampered_body_is_401(edge):
    body = json.dumps(message()).encode()
    headers = edge.app.headers(body)
    await _refused(edge, 401, "bad_signature", await edge.app.send(body.replace(b"conv-1", b"conv-2"), headers))


async def test_replayed_old_timestamp_is_401(edge):
    await _refused(edge, 401, "stale_timestamp", await edge.app.send(message(), skew=-3600))


async def test_non_numeric_timestamp_is_401(edge):
    headers = {"X-SB-Timestamp": "yesterday", "X-SB-Signature": "00"}
    await _refused(edge, 401, "bad_timestamp", await edge.app.send(message(), headers=headers))


async def test_body_too_large_is_413(edge):
    await _refused(edge, 413, "too_large", await edge.app.send(message(text="x" * 70_000)))


async def test_malformed_json_is_400(edge):
    await _refused(edge, 400, "malformed", await edge.app.send(b'{"id": '))


async def test_deeply_nested_json_is_400(edge):
    await _refused(edge, 400, "malformed", await edge.app.send(b"[" * 50_000))


async def test_sent_at_no_clock_can_read_is_400_before_anything_is_queued(edge):
    # 10^30 ms passed the old check, was accepted with 202 and then dead-lettered by the normalizer.
    for sent_at in (10**30, 253_402_300_800_000, -1, 1.7e12, True):
        status, body = await edge.app.send(message(sent_at=sent_at))
        assert (status, body["error"]) == (400, {
            "code": "invalid_field", "message": "'sent_at' must be epoch milliseconds from 0 to 253402300799999"})
    assert await edge.xlen("sdk") == 0
    status, _ = await edge.app.send(message(sent_at=253_402_300_799_999))
    assert status == 202 and await edge.xlen("sdk") == 1


async def test_message_without_user_is_400(edge):
    doc = message()
    del doc["user"]
    await _refused(edge, 400, "missing_field", await edge.app.send(doc))


async def test_message_id_that_is_not_a_uuid_is_400(edge):
    await _refused(edge, 400, "invalid_field", await edge.app.send({**message(), "id": "42"}))


async def test_bad_conversation_id_is_400(edge):
    await _refused(edge, 400, "invalid_field", await edge.app.send(message(conversation="a/b")))


async def test_empty_message_is_400(edge):
    await _refused(edge, 400, "missing_field", await edge.app.send(message(text="")))


async def test_unknown_upload_is_400(edge):
    await _refused(edge, 400, "unknown_upload", await edge.app.send(message(attachments=["01JDZZZZZZZZZZZZZZZZZZZZZZ"])))


async def test_upload_over_the_limit_is_413(edge):
    await _refused(edge, 413, "too_large", await edge.app.upload(b"x" * 4096, "big.bin", "application/octet-stream"))


async def test_unsigned_upload_is_401(edge):
    await _refused(edge, 401, "missing_signature", await edge.app.upload(b"x", "a.txt", "text/plain", headers={}))


async def test_unsigned_conversation_read_is_401(edge):
    status, body = await edge.app.thread("conv-1", "u-1001", sign=False)
    assert (status, body["error"]["code"]) == (401, "missing_signature")


async def test_conversation_read_without_user_is_400(edge):
    status, body = await edge.app.thread("conv-1", None)
    assert (status, body["error"]["code"]) == (400, "missing_field")


async def test_uploads_over_the_apps_rate_are_429_with_retry_after(edge):
    await edge.add_account("sdk", "acme-slow", {"secret": SECRET, "rate_uploads": 2})
    slow = App(edge, key="acme-slow")
    for i in range(2):
        assert (await slow.upload(f"file {i}".encode(), "a.txt", "text/plain"))[0] == 201
    async with edge.http.post(edge.url("/sdk/v1/apps/acme-slow/uploads"), data=b"third",
                              headers=slow.headers(b"third", **{"Content-Type": "text/plain"})) as resp:
        doc = await resp.json()
        assert (resp.status, doc["error"]["code"]) == (429, "rate_limited")
        assert 1 <= int(resp.headers["Retry-After"]) <= 60
    # Unsigned attempts do not use up the app's own uploads: they count per address only.
    assert (await edge.app.upload(b"x", "a.txt", "text/plain", headers={}))[0] == 401


async def test_unsigned_upload_attempts_from_one_address_are_429_before_the_body_is_read(edge):
    await edge.add_account("sdk", "acme-ip", {"secret": SECRET, "rate_uploads_per_ip": 3})
    other = App(edge, key="acme-ip", secret="wrong")
    for _ in range(3):
        await _refused(edge, 401, "bad_signature", await other.upload(b"x", "a.txt", "text/plain"))
    await _refused(edge, 429, "rate_limited", await other.upload(b"x", "a.txt", "text/plain"))


async def test_upload_file_names_lose_paths_and_nul_but_keep_chinese(edge):
    names = {"..%2F..%2Fetc%2Fpasswd%00": "passwd", "%E6%8A%A5%E4%BB%B7%2F..%2F%E5%8D%95.pdf": "单.pdf",
             "..": "upload", "%E5%90%88%E5%90%8C%20v2.pdf": "合同 v2.pdf"}
    for raw, kept in names.items():
        status, up = await edge.app.upload(raw.encode(), raw, "application/pdf")
        assert status == 201
        doc = json.loads(await edge.redis.get(keys.sdk_upload_key(1, up["upload"])))
        assert doc["filename"] == kept, raw


# --- through the normalizer (SQLite and PostgreSQL) ------------------------------------------


@pytest.fixture
async def flow(system):
    async with running_gateway(system.bus, system.db, system.tenant) as gw:
        await gw.add_account("sdk", "acme-ios", {"secret": SECRET})
        await gw.add_account("webform", "contact", {})
        gw.app = App(gw)
        gw.system = system
        yield gw


async def test_conversation_id_threads_and_the_app_reads_the_thread_with_agent_replies(flow):
    _, up = await flow.app.upload(b"%PDF order", "order.pdf", "application/pdf")
    first = message("订单 1042 没到", attachments=[up["upload"]])
    await flow.app.send(first)
    await flow.app.send(message("还有一个问题"))
    await flow.app.send(message("另一件事", conversation="conv-2"))
    await flow.system.drain()
    one, two = await flow.system.tickets()
    assert [m.ticket_id for m in await flow.system.messages()] == [one.id, one.id, two.id]
    async with flow.system.db.write() as conn:  # an agent answers on the ticket
        await conn.run_sync(store.add_message, tenant_id=flow.system.tenant, ticket_id=one.id, channel="sdk",
                                account_id=one.account_id, dedup_key="reply-1", envelope_id="-", direction="out",
                                sender="agent@acme.test", sender_name="客服小李", text="已经为您查询", headers={},
                                created_at=now_ms())
    status, thread = await flow.app.thread("conv-1", "u-1001")
    assert status == 200
    assert [(m["from"], m["text"]) for m in thread["messages"]] == [
        ("user", "订单 1042 没到"), ("user", "还有一个问题"), ("agent", "已经为您查询")]
    assert thread["messages"][0]["client_id"] == first["id"]
    assert [(a["filename"], a["size"]) for a in thread["messages"][0]["attachments"]] == [("order.pdf", 10)]
    assert thread["messages"][2]["name"] == "客服小李"
    assert (await flow.app.thread("conv-1", "u-other"))[1]["messages"] == []  # not this user's


async def test_receipt_of_an_sdk_message_tells_its_ticket(flow):
    _, body = await flow.app.send(message())
    await flow.system.drain()
    [ticket] = await flow.system.tickets()
    async with flow.http.get(flow.url(f"/receipts/{body['receipt']}")) as resp:
        assert (await resp.json())["ticket"] == {"number": ticket.number, "status": "new"}


async def test_email_seen_on_a_form_and_in_the_app_is_one_customer(flow):
    async with flow.http.post(flow.url("/forms/contact"), data={"message": "hi", "email": "Wang.Fang@example.cn"}) as r:
        assert r.status == 202
    await flow.system.drain()
    doc = message()
    doc["user"].update(email="wang.fang@example.cn", phone="+86 138 0013 8000")
    await flow.app.send(doc)
    await flow.system.drain()
    form_msg, app_msg = await flow.system.messages()
    assert form_msg.customer_id == app_msg.customer_id
    async with flow.system.db.read() as conn:
        ids = sorted((i.kind, i.value) for i in (await conn.execute(
            select(identities).where(identities.c.customer_id == app_msg.customer_id))).all())
    assert ids == [("email", "wang.fang@example.cn"), ("phone", "+8613800138000"), ("sdk", "u-1001")]
