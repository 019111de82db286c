"""SMTP ingress with a real smtplib client: what lands on ingest.email, and every refusal."""

import asyncio
import smtplib

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


@pytest.fixture
async def server(sqlite_url, redis_url, tmp_path):
    db = Database(sqlite_url)
    await migrate(db)
    async with db.write() as conn:
        acme = await admin.create_tenant(conn, "acme")
        globex = await admin.create_tenant(conn, "globex")
        await admin.add_account(conn, acme, "email", SUPPORT)
        await admin.add_account(conn, acme, "email", "sales@acme.test")
        await admin.add_account(conn, globex, "email", "help@globex.test")
    client = aioredis.Redis.from_url(redis_url)
    bus = Bus(client, BlobStore(tmp_path / "blobs"), 256 * 1024)
    port = free_port()
    srv = await smtp.serve(bus, AccountDirectory(db), "127.0.0.1", port, max_size=64 * 1024, hostname="mx.test")
    yield port, client
    srv.close()
    await srv.wait_closed()
    await client.aclose()
    await db.dispose()


def _send(port, rcpts, raw, sender="zhang.wei@example.cn"):
    # On the wire every line ends in CRLF, as a real mail client sends it.
    wire = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        return c.sendmail(sender, rcpts, wire)


async def _entries(client):
    return [Envelope.unpack(f[b"e"]) for _, f in await client.xrange("ingest.email")]


async def test_accepted_mail_is_on_the_stream_byte_for_byte(server):
    port, client = server
    raw, _ = make_mail()
    refused = await asyncio.to_thread(_send, port, [SUPPORT], raw)
    assert refused == {}
    [env] = await _entries(client)
    assert (env.tenant, env.channel, env.content_type) == ("acme", "email", "message/rfc822")
    assert env.payload.replace(b"\r\n", b"\n") == raw.replace(b"\r\n", b"\n")
    assert env.meta["mail_from"] == "zhang.wei@example.cn" and env.meta["rcpt_to"] == SUPPORT


async def test_one_envelope_per_tenant(server):
    # Two mailboxes of one tenant: one envelope; a second tenant gets its own.
    port, client = server
    await asyncio.to_thread(_send, port, [SUPPORT, "sales@acme.test", "help@globex.test"], make_mail()[0])
    envs = await _entries(client)
    assert sorted(e.tenant for e in envs) == ["acme", "globex"]


async def test_unknown_recipient_gets_550_and_nothing_is_queued(server):
    port, client = server
    with pytest.raises(smtplib.SMTPRecipientsRefused) as err:
        await asyncio.to_thread(_send, port, ["nobody@acme.test"], make_mail()[0])
    code, text = err.value.recipients["nobody@acme.test"]
    assert code == 550 and b"no support mailbox" in text
    assert await client.xlen("ingest.email") == 0


async def test_oversized_mail_gets_552_and_nothing_is_queued(server):
    port, client = server
    raw, _ = make_mail(body="x" * 100_000)
    with pytest.raises(smtplib.SMTPException) as err:
        await asyncio.to_thread(_send, port, [SUPPORT], raw)
    assert "552" in str(err.value)
    assert await client.xlen("ingest.email") == 0


async def test_queue_down_gets_451_temporary_failure(server):
    # Backpressure: if the stream cannot take the mail, the sender must keep it and retry.
    port, client = server
    await client.config_set("maxmemory", 1)
    await client.config_set("maxmemory-policy", "noeviction")
    try:
        with pytest.raises(smtplib.SMTPDataError) as err:
            await asyncio.to_thread(_send, port, [SUPPORT], make_mail()[0])
        assert err.value.smtp_code == 451
    finally:
        await client.config_set("maxmemory", 0)
    assert await client.xlen("ingest.email") == 0
