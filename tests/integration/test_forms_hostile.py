"""Hostile web form bodies through the real gateway: refused by count before any MIME parse."""

from __future__ import annotations

import asyncio
import io
import json
import threading

import pytest
from gateway_support import edge_gateway, running_gateway
from sqlalchemy import select

from connectors.push import GATEWAY, issue_receipt
from connectors.webform.decoding import QUEUED, WORKERS
from connectors.webform.routes import DECODER
from core import keys
from core.envelope import Envelope
from core.ids import new_id
from ticket_service.store import admin
from ticket_service.store.tables import attachments

B = "hostile-0123"
CT = {"Content-Type": f"multipart/form-data; boundary={B}"}


def part(name: str, data: bytes = b"x", filename: str | None = None, header: str = "") -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
    return f"--{B}\r\nContent-Disposition: {disposition}\r\n{header}\r\n".encode() + data + b"\r\n"


def body(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{B}--\r\n".encode()


@pytest.fixture
async def edge(sqlite_url, redis_url, tmp_path):
    async with edge_gateway(sqlite_url, redis_url, tmp_path) as gw:
        await gw.add_account("webform", "open", {"rate_per_ip": 1000, "max_files": 3})
        yield gw


async def post(gw, data: bytes, headers: dict = CT) -> tuple[int, dict, dict]:
    async with gw.http.post(gw.url("/forms/open"), data=data, headers=headers) as resp:
        return resp.status, await resp.json(), dict(resp.headers)


async def refused(gw, result, status: int, code: str) -> str:
    got, doc, _ = result
    assert (got, doc["error"]["code"]) == (status, code), doc
    assert await gw.xlen("webform") == 0
    return doc["error"]["message"]


async def test_twenty_thousand_file_parts_are_refused_413_too_many_files(edge):
    hostile = body(*[part("f", filename="a")] * 20_000)
    result = await post(edge, io.BytesIO(hostile))
    assert await refused(edge, result, 413, "too_many_files") == "more than 3 files"
    assert result[2]["Connection"] == "close"  # the rest of the body is not read
    # Refused while counting: nothing was handed to the decoding pool.
    assert edge.server.app[DECODER].pending == 0


async def test_too_many_text_fields_are_413_too_many_fields(edge):
    hostile = body(*[part(f"n{i}") for i in range(201)])
    assert await refused(edge, await post(edge, hostile), 413, "too_many_fields") == "more than 200 fields"


async def test_a_close_delimiter_with_trailing_text_does_not_stop_the_count(edge):
    # "--B--x" is no delimiter to the parser, so the parts after it still count.
    hostile = f"--{B}--x\r\n".encode() + body(*[part("f", filename="a")] * 4)
    await refused(edge, await post(edge, hostile), 413, "too_many_files")


async def test_parts_hidden_in_a_header_block_are_refused(edge):
    hostile = f"--{B}\r\n".encode() + f"--{B}\r\n".encode() * 50 + b"\r\nx\r\n" + f"--{B}--\r\n".encode()
    await refused(edge, await post(edge, hostile), 400, "malformed")


async def test_an_oversized_part_header_is_413(edge):
    hostile = body(part("message", header="X-Pad: " + "a" * 9000 + "\r\n"))
    await refused(edge, await post(edge, hostile), 413, "header_too_large")


async def test_a_part_with_many_parameters_is_413(edge):
    params = "".join(f"; p{i}=v" for i in range(40))
    hostile = f'--{B}\r\nContent-Disposition: form-data; name="message"{params}\r\n\r\nhi\r\n--{B}--\r\n'.encode()
    await refused(edge, await post(edge, hostile), 413, "header_too_large")


async def test_a_nested_multipart_part_is_400(edge):
    inner = "--in\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--in--\r\n"
    hostile = body(part("message", inner.encode(), header="Content-Type: multipart/mixed; boundary=in\r\n"))
    message = await refused(edge, await post(edge, hostile), 400, "malformed")
    assert "RFC 7578" in message


async def test_deeply_nested_json_is_400_naming_the_nesting(edge):
    deep = b"[" * 100_000 + b"]" * 100_000
    result = await post(edge, b'{"message": ' + deep + b"}", {"Content-Type": "application/json"})
    assert "nested too deeply" in await refused(edge, result, 400, "malformed")


async def test_a_huge_content_type_header_is_400(edge):
    result = await post(edge, body(part("message")), {"Content-Type": f"multipart/form-data; boundary={B}; "
                                                                       + "x=y; " * 300})
    await refused(edge, result, 400, "malformed")


async def test_a_delimiter_split_across_arrivals_is_counted(edge):
    # The client sends the body in 7-byte pieces: every delimiter straddles two of them.
    hostile = body(*[part("f", filename="a")] * 4)

    async def pieces():
        for i in range(0, len(hostile), 7):
            yield hostile[i:i + 7]
            await asyncio.sleep(0)
    await refused(edge, await post(edge, pieces()), 413, "too_many_files")


async def test_an_accepted_body_is_queued_byte_for_byte(edge):
    good = body(part("message", "退货怎么办？".encode()), part("photo", b"\x89PNG", filename="照片.png"))
    status, doc, _ = await post(edge, good)
    assert (status, doc["status"]) == (202, "accepted")
    [(_, fields)] = await edge.redis.xrange("ingest.webform")
    assert Envelope.unpack(fields[b"e"]).payload == good


async def test_a_saturated_decoding_pool_answers_503_with_retry_after(edge):
    decoder, release = edge.server.app[DECODER], threading.Event()
    busy = [asyncio.create_task(decoder.run(release.wait, 10)) for _ in range(WORKERS + QUEUED)]
    await asyncio.sleep(0.05)
    try:
        result = await post(edge, body(part("message", b"hi")))
        await refused(edge, result, 503, "busy")
        assert result[2]["Retry-After"] == "2"
    finally:
        release.set()
        await asyncio.gather(*busy)
    assert (await post(edge, body(part("message", b"hi"))))[0] == 202


# --- receipts --------------------------------------------------------------------------------


async def test_receipts_of_one_millisecond_are_unrelated_and_a_ulid_guess_is_404(edge):
    gw = edge.server.app[GATEWAY]
    async with edge.db.read() as conn:
        account = await admin.find_account(conn, "webform", "open")
    first = new_id()
    # The next envelope id of the same millisecond: what a neighbour could have guessed before.
    second = first[:-1] + ("1" if first[-1] != "1" else "2")
    envs = [Envelope(tenant="acme", channel="webform", account=str(account.id), payload=b"",
                     content_type="text/plain", id=i) for i in (first, second)]
    a, b = [await issue_receipt(gw, env, account, f"webform:test:{env.id}") for env in envs]
    assert a != b and a[:8] != b[:8] and len(a) == len(b) == 32
    for guess in (first, second):
        async with edge.http.get(edge.url(f"/receipts/{guess}")) as resp:
            assert (resp.status, (await resp.json())["error"]["code"]) == (404, "unknown_receipt")
    for receipt, env in ((a, envs[0]), (b, envs[1])):
        assert json.loads(await edge.redis.get(keys.receipt_key(receipt)))["envelope_id"] == env.id
        async with edge.http.get(edge.url(f"/receipts/{receipt}")) as resp:
            assert (resp.status, (await resp.json())["status"]) == (200, "queued")


# --- file names ------------------------------------------------------------------------------


@pytest.fixture
async def flow(system):
    async with running_gateway(system.bus, system.db, system.tenant) as gw:
        await gw.add_account("webform", "open", {"rate_per_ip": 1000})
        gw.system = system
        yield gw


async def test_form_file_names_lose_paths_and_nul_but_keep_chinese(flow):
    good = body(part("message", b"see files"),
                part("a", b"one", filename="../../etc/pass\x00wd"),
                part("b", b"two", filename="home/li/报价单 2024.pdf"),
                part("c", b"three", filename=".."))
    status, _, _ = await post(flow, good)
    assert status == 202
    await flow.system.drain()
    async with flow.system.db.read() as conn:
        names = sorted((await conn.execute(select(attachments.c.filename))).scalars().all())
    assert names == ["passwd", "upload", "报价单 2024.pdf"]
