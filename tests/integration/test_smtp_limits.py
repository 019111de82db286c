"""SMTP session limits with a real smtplib client: recipients per mail, unknown-recipient
guessing, connections per address and in total, and what each tenant's copy records."""

from __future__ import annotations

import asyncio
import contextlib
import smtplib
import socket

import pytest
import redis.asyncio as aioredis
from support import SUPPORT, free_port, make_mail

from connectors.email import smtp
from core.blobs import BlobStore
from core.bus import Bus
from core.envelope import Envelope
from ticket_service.store import admin
from ticket_service.store.db import Database, migrate
from ticket_service.store.directory import AccountDirectory

GLOBEX = "help@globex.test"


@contextlib.asynccontextmanager
async def serving(sqlite_url, redis_url, tmp_path, **limits):
    """Tenants acme (help@, sales@, and box0..box119@acme.test) and globex, on a real SMTP server."""
    db = Database(sqlite_url)
    await migrate(db)
    async with db.write() as conn:
        acme = await admin.create_tenant(conn, "acme")
        globex = await admin.create_tenant(conn, "globex")
        for address in [SUPPORT, "sales@acme.test", *(f"box{i}@acme.test" for i in range(120))]:
            await admin.add_account(conn, acme, "email", address)
        await admin.add_account(conn, globex, "email", GLOBEX)
    client = aioredis.Redis.from_url(redis_url)
    port = free_port()
    srv = await smtp.serve(Bus(client, BlobStore(tmp_path / "blobs"), 256 * 1024), AccountDirectory(db),
                           "127.0.0.1", port, max_size=1 << 20, hostname="mx.test",
                           limits=smtp.SessionLimits(**limits))
    try:
        yield port, client
    finally:
        srv.close()
        await srv.wait_closed()
        await client.aclose()
        await db.dispose()


async def _entries(client) -> list[Envelope]:
    return [Envelope.unpack(f[b"e"]) for _, f in await client.xrange("ingest.email")]


def _session(port: int, source: str = "127.0.0.1") -> smtplib.SMTP:
    c = smtplib.SMTP("127.0.0.1", port, timeout=10, source_address=(source, 0))
    c.ehlo("client.example.cn")
    return c


def _rcpt_run(port: int, rcpts: list[str]) -> tuple[list[tuple[int, bytes]], tuple[int, bytes]]:
    """MAIL, one RCPT per address, then DATA: each RCPT's reply and DATA's."""
    with _session(port) as c:
        c.mail("zhang.wei@example.cn")
        replies = [c.rcpt(r) for r in rcpts]
        return replies, c.data(make_mail()[0])


async def test_recipients_beyond_the_cap_get_452_and_duplicates_count_once(sqlite_url, redis_url, tmp_path):
    # RFC 5321 §4.5.3.1.8: 100 must be taken; the 101st distinct one is told to come back later.
    async with serving(sqlite_url, redis_url, tmp_path, max_recipients=100) as (port, client):
        rcpts = [f"box{i}@acme.test" for i in range(100)]
        replies, data = await asyncio.to_thread(_rcpt_run, port, [*rcpts, "BOX0@acme.test", "box100@acme.test",
                                                                  "box101@acme.test"])
        assert {code for code, _ in replies[:101]} == {250}
        assert replies[101:] == [(452, b"4.5.3 Too many recipients")] * 2
        assert data[0] == 250
        [env] = await _entries(client)
        assert env.meta["rcpt_to"].split(",") == rcpts


async def test_each_tenant_copy_names_only_its_own_recipients(sqlite_url, redis_url, tmp_path):
    async with serving(sqlite_url, redis_url, tmp_path) as (port, client):
        _, data = await asyncio.to_thread(_rcpt_run, port, [SUPPORT, GLOBEX, "sales@acme.test"])
        assert data[0] == 250
        metas = {e.tenant: e.meta["rcpt_to"] for e in await _entries(client)}
        assert metas == {"acme": f"{SUPPORT},sales@acme.test", "globex": GLOBEX}


async def test_rset_drops_the_recipients_of_the_aborted_mail(sqlite_url, redis_url, tmp_path):
    # A recipient given before RSET must not receive the next mail of the session.
    def run():
        with _session(port) as c:
            c.mail("zhang.wei@example.cn")
            assert c.rcpt(GLOBEX)[0] == 250
            c.rset()
            c.mail("zhang.wei@example.cn")
            assert c.rcpt(SUPPORT)[0] == 250
            return c.data(make_mail()[0])

    async with serving(sqlite_url, redis_url, tmp_path) as (port, client):
        assert (await asyncio.to_thread(run))[0] == 250
        assert [(e.tenant, e.meta["rcpt_to"]) for e in await _entries(client)] == [("acme", SUPPORT)]


async def test_repeated_unknown_recipients_end_the_session_with_421(sqlite_url, redis_url, tmp_path):
    # Guessing addresses: the 20th unknown one gets 421 and the connection is closed.
    def run():
        c = _session(port)
        c.mail("harvester@example.net")
        replies = [c.rcpt(f"guess{i}@acme.test") for i in range(20)]
        with pytest.raises(smtplib.SMTPServerDisconnected):
            c.noop()
        return replies

    async with serving(sqlite_url, redis_url, tmp_path, max_unknown_recipients=20) as (port, client):
        replies = await asyncio.to_thread(run)
        assert replies[0] == (550, b"5.1.1 <guess0@acme.test>: no support mailbox here by that address")
        assert {code for code, _ in replies[:19]} == {550}
        assert replies[19] == (421, b"4.7.0 Too many unknown recipients, closing connection")
        assert await client.xlen("ingest.email") == 0


async def test_controls_in_mail_from_and_helo_are_not_stored(sqlite_url, redis_url, tmp_path):
    # NUL, ESC and C1 controls from the client never reach the envelope's meta; bad bytes become U+FFFD.
    def run():
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
            c.ehlo("mx\x1b[2J.example.cn")
            c.send(b"MAIL FROM:<zhang\x00wei\xc2\x85\xff@example.cn>\r\n")  # NUL, U+0085, a byte that is not UTF-8
            assert c.getreply()[0] == 250
            assert c.rcpt(SUPPORT)[0] == 250
            return c.data(make_mail()[0])

    async with serving(sqlite_url, redis_url, tmp_path) as (port, client):
        assert (await asyncio.to_thread(run))[0] == 250
        [env] = await _entries(client)
        assert (env.meta["mail_from"], env.meta["helo"]) == ("zhangwei\ufffd@example.cn", "mx[2J.example.cn")


def _connect(port: int, source: str) -> tuple[socket.socket, bytes]:
    s = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    return s, s.recv(200)


def _read_to_close(s: socket.socket) -> bytes:
    chunks = []
    while chunk := s.recv(200):
        chunks.append(chunk)
    return b"".join(chunks)


async def test_connections_over_the_per_address_cap_get_421(sqlite_url, redis_url, tmp_path):
    async with serving(sqlite_url, redis_url, tmp_path, max_connections_per_ip=3) as (port, _):
        held = [await asyncio.to_thread(_connect, port, "127.0.0.1") for _ in range(3)]
        assert all(greeting.startswith(b"220 mx.test") for _, greeting in held)
        extra, refused = await asyncio.to_thread(_connect, port, "127.0.0.1")
        assert refused == b"421 4.7.0 Too many connections from your address\r\n"
        assert await asyncio.to_thread(_read_to_close, extra) == b""  # and then closed
        extra.close()
        other, greeting = await asyncio.to_thread(_connect, port, "127.0.0.2")  # another address
        assert greeting.startswith(b"220 mx.test")
        for s, _ in [*held, (other, b"")]:
            s.close()


async def test_refusal_text_over_the_per_address_and_total_caps(sqlite_url, redis_url, tmp_path):
    async with serving(sqlite_url, redis_url, tmp_path, max_connections_per_ip=1, max_connections=2) as (port, _):
        first, _ = await asyncio.to_thread(_connect, port, "127.0.0.1")
        same, refused = await asyncio.to_thread(_connect, port, "127.0.0.1")
        assert refused == b"421 4.7.0 Too many connections from your address\r\n"
        second, greeting = await asyncio.to_thread(_connect, port, "127.0.0.2")
        assert greeting.startswith(b"220 ")
        third, busy = await asyncio.to_thread(_connect, port, "127.0.0.3")
        assert busy == b"421 4.3.2 Too many connections, try again later\r\n"
        for s in (first, same, second, third):
            s.close()


async def test_an_idle_session_is_closed(sqlite_url, redis_url, tmp_path):
    def run():
        c = _session(port)
        c.mail("zhang.wei@example.cn")
        with pytest.raises(smtplib.SMTPServerDisconnected):
            c.getreply()  # nothing sent: the server closes the session at its idle timeout

    async with serving(sqlite_url, redis_url, tmp_path, idle_timeout_s=0.3) as (port, _):
        await asyncio.to_thread(run)
