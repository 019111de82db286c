"""SMTP ingress with a real smtplib client: what lands on ingest.email, and every refusal."""

import asyncio
import smtplib

import pytest
import redis.asyncio as aioredis
from peer_corpus import corpus_root
from support import SUPPORT, free_port, make_mail

from connectors.email import smtp
from core.blobs import BlobStore
from core.bus import Bus
from core.envelope import Envelope
from ticket_service.store import admin
from ticket_service.store.db import Database, migrate
from ticket_service.store.directory import AccountDirectory


@pytest.fixture
async def server(request, sqlite_url, redis_url, tmp_path):
    """The SMTP server on a free port (64 KiB limit unless a test passes serve() options)."""
    options = {"max_size": 64 * 1024, **getattr(request, "param", {})}
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
    srv = await smtp.serve(bus, AccountDirectory(db), "127.0.0.1", port, hostname="mx.test", **options)
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


def _send_without_size(port, raw):
    # Like a client that does not declare SIZE in MAIL: the size is only known during DATA.
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.ehlo()
        assert c.mail("zhang.wei@example.cn")[0] == 250
        assert c.rcpt(SUPPORT)[0] == 250
        return c.data(raw)


@pytest.mark.parametrize("server", [{"max_size": 1024 * 1024}], indirect=True)
@pytest.mark.parametrize("length", [5_000, 100_000])
async def test_lines_longer_than_998_octets_are_accepted_byte_for_byte(server, length):
    # RFC 5322 §2.1.1 binds senders; as Postfix does, a long line is no reason to bounce.
    port, client = server
    head, _ = make_mail(body="short first line")
    raw = head.replace(b"\n", b"\r\n") + b"<p>" + b"x" * length + b"</p>\r\n.dot-stuffed\r\n"
    code, text = await asyncio.to_thread(_send_without_size, port, raw)
    assert code == 250, text
    [env] = await _entries(client)
    assert env.payload == raw


async def test_one_line_longer_than_the_size_limit_gets_552_not_500(server):
    # Without SIZE in MAIL, a single 100,000-octet line against a 64 KiB limit: too much data.
    port, client = server
    head, _ = make_mail(body="")
    code, text = await asyncio.to_thread(_send_without_size, port, head + b"y" * 100_000 + b"\r\n")
    assert (code, text) == (552, b"Error: Too much mail data")
    assert await client.xlen("ingest.email") == 0


async def test_many_lines_over_the_size_limit_get_552_during_data(server):
    port, client = server
    raw, _ = make_mail(body=("z" * 70 + "\n") * 1000)  # 71,000 octets of short lines
    code, text = await asyncio.to_thread(_send_without_size, port, raw.replace(b"\n", b"\r\n"))
    assert (code, text) == (552, b"Error: Too much mail data")
    assert await client.xlen("ingest.email") == 0


def _peer_mails() -> list:
    # Other helpdesks' test mails, found where the peer-corpus parse test finds them.
    peers = corpus_root()
    assert peers is not None and peers.is_dir(), "no shared/corpus/peers beside the checkout"
    return sorted(peers.glob("zammad/*.box")) + sorted(peers.glob("chatwoot/*.eml"))


def _as_delivered(raw: bytes) -> bytes:
    # What an MTA puts on the wire and its receiver stores: CRLF line ends, ending in CRLF.
    wire = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return wire if wire.endswith(b"\r\n") else wire + b"\r\n"


def _send_all(port, mails: list) -> list:
    refused = []
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
        for path in mails:
            try:
                c.sendmail("mailer@example.net", [SUPPORT], _as_delivered(path.read_bytes()))
            except smtplib.SMTPException as exc:
                refused.append((path.name, str(exc)[:200]))
                c.rset()
    return refused


@pytest.mark.parametrize("server", [{"max_size": 25 * 1024 * 1024}], indirect=True)
async def test_every_peer_corpus_mail_is_accepted_and_kept_byte_for_byte(server, tmp_path):
    # Zammad's and Chatwoot's test mails (long lines, 8-bit, up to 1.5 MB) over real SMTP.
    port, client = server
    bus = Bus(client, BlobStore(tmp_path / "blobs"), 256 * 1024)  # large ones are claim-checked
    mails = _peer_mails()
    assert {p.parent.name for p in mails} == {"zammad", "chatwoot"}
    refused = await asyncio.to_thread(_send_all, port, mails)
    assert refused == []
    envs = [await bus.materialize(env) for env in await _entries(client)]
    assert len(envs) == len(mails)
    mismatched = [p.name for p, env in zip(mails, envs, strict=True) if env.payload != _as_delivered(p.read_bytes())]
    assert mismatched == []


async def _replies(reader, count):
    """``count`` replies (multi-line ones whole), each as (code, text of its last line)."""
    out = []
    while len(out) < count:
        line = await asyncio.wait_for(reader.readline(), 5)
        assert len(line) >= 4, line
        if line[3:4] != b"-":
            out.append((int(line[:3]), line[4:].strip().decode()))
    return out


async def _greeted(reader, writer):
    """Past the banner and EHLO; the EHLO reply's lines."""
    await _replies(reader, 1)
    writer.write(b"EHLO client.example\r\n")
    lines = []
    while not (line := await asyncio.wait_for(reader.readline(), 5)).startswith(b"250 "):
        lines.append(line.strip().decode())
    return [*lines, line.strip().decode()]


@pytest.fixture
def writes(monkeypatch):
    """What the server wrote on each connection, one item per write (the writer's own write,
    called through)."""
    seen: list[bytes] = []
    made = smtp.CountingSMTP.connection_made

    def connection_made(self, transport):
        made(self, transport)
        write = self._writer.write

        def counted(data):
            seen.append(bytes(data))
            return write(data)
        self._writer.write = counted
    monkeypatch.setattr(smtp.CountingSMTP, "connection_made", connection_made)
    return seen


async def test_pipelined_commands_are_answered_in_order_with_one_write(server, writes):
    port, client = server
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        assert "250-PIPELINING" in await _greeted(reader, writer)
        writes.clear()
        # RFC 2920: MAIL, RCPT and DATA sent together; an unknown recipient among them.
        writer.write(b"MAIL FROM:<zhang.wei@example.cn>\r\nRCPT TO:<" + SUPPORT.encode()
                     + b">\r\nRCPT TO:<nobody@acme.test>\r\nDATA\r\n")
        replies = await _replies(reader, 4)
        assert [code for code, _ in replies] == [250, 250, 550, 354]
        assert "no support mailbox" in replies[2][1]
        # The 250s were held while the next command was in hand; the 550 took them along.
        assert len(writes) == 2 and writes[0].count(b"\r\n") == 3 and writes[1].startswith(b"354 ")
        raw, _ = make_mail()
        writer.write(raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") + b".\r\n")
        [(code, text)] = await _replies(reader, 1)
        assert code == 250 and text.startswith("2.0.0 Queued as ")
        [env] = await _entries(client)
        assert env.meta["rcpt_to"] == SUPPORT
    finally:
        writer.close()
        await writer.wait_closed()


async def test_a_reply_is_not_held_for_a_command_that_has_not_all_arrived(server, writes):
    port, _ = server
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await _greeted(reader, writer)
        # MAIL whole, RCPT cut short: the server must answer MAIL before it waits for the rest.
        writer.write(b"MAIL FROM:<zhang.wei@example.cn>\r\nRCPT TO:<" + SUPPORT.encode()[:4])
        assert await _replies(reader, 1) == [(250, "OK")]
        writer.write(SUPPORT.encode()[4:] + b">\r\n")
        assert [code for code, _ in await _replies(reader, 1)] == [250]
        writer.write(b"QUIT\r\n")
        assert [code for code, _ in await _replies(reader, 1)] == [221]
    finally:
        writer.close()
        await writer.wait_closed()
