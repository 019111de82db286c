"""The HTTP listener of the roles (ops.httpserver) with raw sockets and a real client: response
headers, the request-head deadline, the keep-alive timer and the connection caps."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json

import aiohttp
import pytest
from support import free_port

from core.settings import load
from ops import httpserver
from ops.roles import http_app
from ops.runtime import Runtime
from ticket_service.store import admin
from ticket_service.store import tickets as store

PDF = b"%PDF-1.4 invoice 1042"
GET = b"GET /healthz HTTP/1.1\r\nHost: switchboard.test\r\n\r\n"


@contextlib.asynccontextmanager
async def serving(tmp_path, redis_url, sqlite_url, **overrides):
    """``http_app`` of a runtime on real Redis and SQLite, served by ``httpserver.listen``."""
    settings = load(env={}).replace(data_dir=tmp_path / "data", redis_url=redis_url, database_url=sqlite_url,
                                    **overrides)
    async with Runtime(settings) as rt:
        port = free_port()
        listener = await httpserver.listen(http_app(rt), settings, port)
        try:
            yield rt, port, listener
        finally:
            await listener.close()


async def _seed(rt) -> tuple[str, int]:
    """Tenant acme with an API key and one email ticket carrying a PDF; returns (key, attachment id)."""
    async with rt.db.write() as conn:
        tenant = await admin.create_tenant(conn, "acme")
        key = await admin.create_api_key(conn, tenant)
        account = await admin.add_account(conn, tenant, "email", "help@acme.test")
        customer = (await conn.run_sync(store.resolve_customer, tenant, "email", "", "zw@example.cn", "Zhang", 1)).id
        ticket, _ = await conn.run_sync(store.create_ticket, tenant_id=tenant, account_id=account, channel="email",
                                        status="new", customer_id=customer, subject="Order 1042", priority=0, now=1)
        message = await conn.run_sync(store.add_message, tenant_id=tenant, account_id=account, ticket_id=ticket,
                                      customer_id=customer, channel="email", dedup_key="<m1@example.cn>",
                                      envelope_id="0" * 26, created_at=1, sender="zw@example.cn")
        await conn.run_sync(store.add_attachments, [dict(
            tenant_id=tenant, message_id=message, filename="invoice.pdf", content_type="application/pdf",
            size=len(PDF), sha256=hashlib.sha256(PDF).hexdigest(), blob_key=await rt.blobs.put(PDF),
            content_id=None, inline=False)])
    async with rt.db.read() as conn:
        [(attachment,)] = (await conn.exec_driver_sql("SELECT id FROM attachments")).all()
    return key, attachment


async def _read_all(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection."""
    return await asyncio.wait_for(reader.read(), 30)


async def _until(predicate) -> None:
    async with asyncio.timeout(30):
        while not predicate():
            await asyncio.sleep(0.01)


def _answer(raw: bytes) -> tuple[str, dict[str, str], dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status, *lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    return status, headers, json.loads(body)


async def test_responses_carry_nosniff_a_plain_server_and_no_store_on_json(tmp_path, redis_url, sqlite_url):
    # API JSON carries personal data: never cached; no version in Server; a download keeps its own caching.
    async with serving(tmp_path, redis_url, sqlite_url) as (rt, port, _):
        key, attachment = await _seed(rt)
        auth = {"Authorization": f"Bearer {key}"}
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/api/v1/tickets", headers=auth) as r:
                assert r.status == 200 and [t["subject"] for t in (await r.json())["items"]] == ["Order 1042"]
                assert (r.headers["Cache-Control"], r.headers["X-Content-Type-Options"], r.headers["Server"]) == (
                    "no-store", "nosniff", "Switchboard")
            async with http.get(f"{base}/api/v1/tickets") as r:
                assert r.status == 401 and (await r.json())["error"]["code"] == "unauthorized"
                assert (r.headers["Cache-Control"], r.headers["Server"]) == ("no-store", "Switchboard")
            async with http.post(f"{base}/sdk/v1/apps/no-such-app/messages", data=b"{}") as r:
                assert r.status == 404 and "error" in await r.json()
                assert (r.headers["Cache-Control"], r.headers["X-Content-Type-Options"]) == ("no-store", "nosniff")
            async with http.get(f"{base}/api/v1/attachments/{attachment}", headers=auth) as r:
                assert r.status == 200 and await r.read() == PDF
                assert r.headers["Cache-Control"] == "private, no-cache"
                assert r.headers["Content-Disposition"].startswith("attachment;")
                assert (r.headers["X-Content-Type-Options"], r.headers["Server"]) == ("nosniff", "Switchboard")
            async with http.get(f"{base}/healthz") as r:
                assert r.status == 200
                assert (r.headers["X-Content-Type-Options"], r.headers["Server"]) == ("nosniff", "Switchboard")
                assert "aiohttp" not in r.headers["Server"]


@pytest.mark.parametrize("sent", [b"", b"GET /healthz HTTP/1.1\r\n", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "])
async def test_a_late_or_half_sent_request_head_gets_408_and_is_closed(tmp_path, redis_url, sqlite_url, sent):
    # Slowloris: nothing, a request line, or half the headers, then silence.
    async with serving(tmp_path, redis_url, sqlite_url, http_header_timeout_s=0.3, http_idle_timeout_s=600) as (_, port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(sent)
        status, headers, body = _answer(await _read_all(reader))
        assert status == "HTTP/1.1 408 Request Timeout" and headers["Connection"] == "close"
        assert body == {"error": {"code": "request_timeout", "message": "request headers not received in time"}}
        writer.close()


async def test_an_idle_keep_alive_connection_is_closed(tmp_path, redis_url, sqlite_url):
    # One whole request answered, then nothing: the keep-alive timer closes it, half a second request or not.
    async with serving(tmp_path, redis_url, sqlite_url, http_header_timeout_s=600, http_idle_timeout_s=0.3) as (_, port, _):
        for then in (b"", b"GET /healthz HTTP/1.1\r\nHost:"):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(GET + then)
            raw = await _read_all(reader)
            assert raw.startswith(b"HTTP/1.1 200 OK\r\n") and raw.count(b"HTTP/1.1") == 1
            writer.close()


async def test_connections_over_the_per_address_cap_get_429_and_other_addresses_still_connect(
        tmp_path, redis_url, sqlite_url):
    async with serving(tmp_path, redis_url, sqlite_url, http_max_connections_per_ip=3,
                       max_connections=10) as (_, port, listener):
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        status, headers, body = _answer(await _read_all(reader))
        assert (status, headers["Server"], headers["Connection"]) == ("HTTP/1.1 429 Too Many Requests", "Switchboard", "close")
        assert body["error"]["code"] == "too_many_connections"
        writer.close()
        # Another address is not affected; a slot freed on the first one is usable again.
        other_reader, other = await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.2", 0))
        other.write(GET)
        assert (await other_reader.readuntil(b"\r\n")) == b"HTTP/1.1 200 OK\r\n"
        other.close()
        held[0][1].close()
        await asyncio.wait_for(held[0][0].read(), 30)
        await _until(lambda: listener.limits.open["127.0.0.1"] == 2)  # the server has seen the close
        again_reader, again = await asyncio.open_connection("127.0.0.1", port)
        again.write(GET)
        assert (await again_reader.readuntil(b"\r\n")) == b"HTTP/1.1 200 OK\r\n"
        for _, w in [*held[1:], (again_reader, again)]:
            w.close()


async def test_connections_over_the_total_cap_get_503(tmp_path, redis_url, sqlite_url):
    async with serving(tmp_path, redis_url, sqlite_url, http_max_connections_per_ip=0, max_connections=2) as (_, port, _):
        held = [await asyncio.open_connection("127.0.0.1", port, local_addr=(f"127.0.0.{i}", 0)) for i in (3, 4)]
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.5", 0))
        status, _, body = _answer(await _read_all(reader))
        assert status == "HTTP/1.1 503 Service Unavailable" and body["error"]["code"] == "server_busy"
        for _, w in [*held, (reader, writer)]:
            w.close()
