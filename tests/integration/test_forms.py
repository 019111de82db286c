"""Web forms through the real gateway with a real aiohttp client: encodings, limits, receipts."""

from __future__ import annotations

import io
import json
import random

import aiohttp
import pytest
from gateway_support import edge_gateway, running_gateway
from sqlalchemy import select

from core import keys
from core.envelope import Envelope
from ticket_service.store.tables import attachments, identities

SHOP = "https://shop.example.cn"
CONTACT = {
    "fields": {"body": "question", "email": "mail", "phone": "tel", "ticket": "ref"},
    "custom": ["order_id"], "required": ["body", "email"], "honeypot": "website",
    "cors_origins": [SHOP], "max_files": 2, "max_file_size": 4096, "max_total_size": 6000,
}


@pytest.fixture
async def edge(sqlite_url, redis_url, tmp_path):
    async with edge_gateway(sqlite_url, redis_url, tmp_path) as gw:
        await gw.add_account("webform", "contact", CONTACT)
        await gw.add_account("webform", "open", {"rate_per_ip": 1000, "rate_per_form": 3})
        await gw.add_account("webform", "strict", {"rate_per_ip": 2})
        yield gw


async def post(gw, form: str, **kwargs) -> tuple[int, dict, dict]:
    async with gw.http.post(gw.url(f"/forms/{form}"), **kwargs) as resp:
        return resp.status, await resp.json(), dict(resp.headers)


async def _entries(gw) -> list[Envelope]:
    return [Envelope.unpack(f[b"e"]) for _, f in await gw.redis.xrange("ingest.webform")]


def multipart(files=(("receipt.pdf", b"%PDF-1.4 receipt", "application/pdf"),), **fields) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for name, value in {"question": "退货怎么办？", "mail": "Li.Na@Example.cn", **fields}.items():
        form.add_field(name, value)
    for filename, data, ctype in files:
        form.add_field("attachment", io.BytesIO(data), filename=filename, content_type=ctype)
    return form


# --- accepted --------------------------------------------------------------------------------


async def test_urlencoded_post_is_queued_byte_for_byte_with_a_receipt(edge):
    status, body, _ = await post(edge, "contact", data={"question": "Where is 1042?", "mail": "a@example.cn"})
    assert (status, body["status"]) == (202, "accepted")
    [env] = await _entries(edge)
    assert env.channel == "webform" and env.id != body["receipt"]
    assert json.loads(await edge.redis.get(keys.receipt_key(body["receipt"])))["envelope_id"] == env.id
    assert env.payload == b"question=Where+is+1042%3F&mail=a%40example.cn"
    assert env.content_type == "application/x-www-form-urlencoded"


async def test_multipart_with_real_files_is_queued(edge):
    status, body, _ = await post(edge, "contact", data=multipart())
    assert status == 202
    [env] = await _entries(edge)
    assert env.content_type.startswith("multipart/form-data; boundary=")
    assert b"%PDF-1.4 receipt" in env.payload


async def test_a_large_file_arrives_whole_through_the_claim_check(edge):
    data = random.Random(4).randbytes(3 * 1024 * 1024)
    status, _, _ = await post(edge, "open", data=multipart([("scan.tiff", data, "image/tiff")], message="scan"))
    assert status == 202
    [env] = await _entries(edge)
    assert env.payload == b"" and "blob" in env.meta  # over the threshold: the entry holds a reference
    assert data in (await edge.bus.materialize(env)).payload


async def test_json_post_is_queued(edge):
    status, _, _ = await post(edge, "contact", json={"question": "hi", "mail": "a@example.cn", "order_id": 1042})
    assert status == 202
    assert (await _entries(edge))[0].content_type == "application/json"


async def test_cors_allows_the_business_origin(edge):
    headers = {"Origin": SHOP, "Access-Control-Request-Method": "POST"}
    async with edge.http.options(edge.url("/forms/contact"), headers=headers) as resp:
        assert resp.status == 204
        assert resp.headers["Access-Control-Allow-Origin"] == SHOP
        assert resp.headers["Access-Control-Allow-Methods"] == "POST"
    status, _, got = await post(edge, "contact", data={"question": "hi", "mail": "a@example.cn"},
                                headers={"Origin": SHOP})
    assert (status, got["Access-Control-Allow-Origin"]) == (202, SHOP)


async def test_filled_honeypot_looks_accepted_but_nothing_is_queued(edge):
    status, body, _ = await post(edge, "contact", data={"question": "buy pills", "mail": "x@spam.example",
                                                        "website": "http://spam.example"})
    assert (status, body["status"]) == (202, "accepted")
    assert await edge.xlen("webform") == 0
    async with edge.http.get(edge.url(f"/receipts/{body['receipt']}")) as resp:
        assert resp.status == 404


# --- bad input: status, a body naming the problem, nothing queued ----------------------------


async def _refused(gw, status: int, code: str, result) -> dict:
    got, body, headers = result
    assert (got, body["error"]["code"]) == (status, code), body
    assert body["error"]["message"]
    assert await gw.xlen("webform") == 0
    return headers


async def test_unknown_form_is_404(edge):
    await _refused(edge, 404, "unknown_account", await post(edge, "nope", data={"question": "hi"}))


async def test_malformed_urlencoded_body_is_400(edge):
    result = await post(edge, "contact", data=b"question&&mail",
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    await _refused(edge, 400, "malformed", result)


async def test_urlencoded_escape_that_is_not_utf8_is_400(edge):
    result = await post(edge, "contact", data=b"question=%ff%fe&mail=a%40example.cn",
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    await _refused(edge, 400, "malformed", result)


async def test_multipart_without_its_boundary_is_400(edge):
    result = await post(edge, "contact", data=b"--xyz\r\nContent-Disposition: form-data; name=\"q\"\r\n\r\nhi\r\n",
                        headers={"Content-Type": "multipart/form-data; boundary=abc"})
    await _refused(edge, 400, "malformed", result)


async def test_malformed_json_is_400(edge):
    result = await post(edge, "contact", data=b'{"question": "hi",', headers={"Content-Type": "application/json"})
    await _refused(edge, 400, "malformed", result)


async def test_json_that_is_not_an_object_is_400(edge):
    await _refused(edge, 400, "malformed", await post(edge, "contact", json=["question", "hi"]))


async def test_other_content_types_are_415(edge):
    result = await post(edge, "contact", data=b"<q>hi</q>", headers={"Content-Type": "application/xml"})
    await _refused(edge, 415, "unsupported_type", result)


async def test_missing_required_field_is_400(edge):
    headers = await _refused(edge, 400, "missing_field", await post(edge, "contact", data={"question": "hi"}))
    assert "Access-Control-Allow-Origin" not in headers


async def test_invalid_email_is_400(edge):
    result = await post(edge, "contact", data={"question": "hi", "mail": "not-an-address"})
    await _refused(edge, 400, "invalid_field", result)


async def test_invalid_phone_is_400(edge):
    result = await post(edge, "contact", data={"question": "hi", "mail": "a@example.cn", "tel": "12345"})
    await _refused(edge, 400, "invalid_field", result)


async def test_too_many_files_is_413(edge):
    files = [(f"{i}.txt", b"x", "text/plain") for i in range(3)]
    await _refused(edge, 413, "too_many_files", await post(edge, "contact", data=multipart(files)))


async def test_file_over_the_per_file_limit_is_413(edge):
    files = [("big.bin", b"x" * 5000, "application/octet-stream")]
    await _refused(edge, 413, "file_too_large", await post(edge, "contact", data=multipart(files)))


async def test_files_over_the_total_limit_are_413(edge):
    files = [("a.bin", b"x" * 3500, "application/octet-stream"), ("b.bin", b"y" * 3500, "application/octet-stream")]
    await _refused(edge, 413, "too_large", await post(edge, "contact", data=multipart(files)))


async def test_body_over_the_form_limit_is_413_unread(edge):
    result = await post(edge, "contact", data=b"question=" + b"x" * 200_000,
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    await _refused(edge, 413, "too_large", result)


async def test_foreign_origin_is_403(edge):
    result = await post(edge, "contact", data={"question": "hi", "mail": "a@example.cn"},
                        headers={"Origin": "https://evil.example"})
    await _refused(edge, 403, "origin_not_allowed", result)
    async with edge.http.options(edge.url("/forms/contact"), headers={"Origin": "https://evil.example"}) as resp:
        assert (resp.status, (await resp.json())["error"]["code"]) == (403, "origin_not_allowed")


async def test_one_address_over_its_rate_is_429_with_retry_after(edge):
    for i in range(2):
        assert (await post(edge, "strict", data={"message": f"hi {i}"}))[0] == 202
    headers = await _refused_after(edge, 2, await post(edge, "strict", data={"message": "hi 3"}))
    assert 1 <= int(headers["Retry-After"]) <= 60


async def test_one_form_over_its_rate_is_429(edge):
    for i in range(3):
        assert (await post(edge, "open", data={"message": f"hi {i}"}))[0] == 202
    headers = await _refused_after(edge, 3, await post(edge, "open", data={"message": "again"}))
    assert int(headers["Retry-After"]) >= 1


async def _refused_after(gw, queued: int, result) -> dict:
    got, body, headers = result
    assert (got, body["error"]["code"]) == (429, "rate_limited") and body["error"]["message"]
    assert await gw.xlen("webform") == queued
    return headers


async def test_unknown_receipt_is_404(edge):
    async with edge.http.get(edge.url("/receipts/01JDZZZZZZZZZZZZZZZZZZZZZZ")) as resp:
        assert (resp.status, (await resp.json())["error"]["code"]) == (404, "unknown_receipt")


# --- through the normalizer (SQLite and PostgreSQL) ------------------------------------------


@pytest.fixture
async def flow(system):
    async with running_gateway(system.bus, system.db, system.tenant) as gw:
        await gw.add_account("webform", "contact", CONTACT)
        gw.system = system
        yield gw


async def receipt(gw, rid: str) -> dict:
    async with gw.http.get(gw.url(f"/receipts/{rid}")) as resp:
        assert resp.status == 200
        return await resp.json()


async def test_receipt_tells_the_ticket_once_the_normalizer_made_it(flow):
    _, body, _ = await post(flow, "contact", data=multipart(tel="138 0013 8000", order_id="1042"))
    assert (await receipt(flow, body["receipt"]))["status"] == "queued"
    await flow.system.drain()
    [ticket] = await flow.system.tickets()
    got = await receipt(flow, body["receipt"])
    assert (got["status"], got["ticket"]) == ("ticket", {"number": ticket.number, "status": "new"})
    [msg] = await flow.system.messages()
    assert (msg.sender, msg.text) == ("li.na@example.cn", "退货怎么办？\n\norder_id: 1042")
    async with flow.system.db.read() as conn:
        [att] = (await conn.execute(select(attachments))).all()
        ids = sorted((i.kind, i.value) for i in (await conn.execute(select(identities))).all())
    assert (att.filename, att.content_type, att.size) == ("receipt.pdf", "application/pdf", 16)
    assert ids == [("email", "li.na@example.cn"), ("phone", "+8613800138000")]


async def test_double_submit_with_one_token_is_one_message_and_both_receipts_resolve(flow):
    data = {"question": "发票", "mail": "a@example.cn", "submission_id": "tok-4f9a2c71"}
    (_, first, _), (_, second, _) = [await post(flow, "contact", data=data) for _ in range(2)]
    await flow.system.drain()
    assert len(await flow.system.messages()) == 1
    assert (await receipt(flow, first["receipt"]))["ticket"] == (await receipt(flow, second["receipt"]))["ticket"]


async def test_ticket_reference_in_the_form_appends_to_that_ticket(flow):
    await post(flow, "contact", data={"question": "first", "mail": "a@example.cn"})
    await flow.system.drain()
    [ticket] = await flow.system.tickets()
    await post(flow, "contact", data={"question": "more", "mail": "a@example.cn", "ref": f"#{ticket.number}"})
    await post(flow, "contact", data={"question": "stranger", "mail": "b@example.cn", "ref": str(ticket.number)})
    await flow.system.drain()
    tickets = await flow.system.tickets()
    assert [m.ticket_id for m in await flow.system.messages()] == [ticket.id, ticket.id, tickets[1].id]
