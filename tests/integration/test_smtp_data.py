"""DATA read in bulk, byte for byte over a real socket: what lands on ingest.email.

The client writes raw octets (small writes with TCP_NODELAY where a split matters), so the
server sees the end-of-data line cut across reads; aiosmtpd's stock server, which reads one
line at a time, is the reference for what the same octets must give.
"""

from __future__ import annotations

import asyncio
import socket

import pytest
import redis.asyncio as aioredis
from aiosmtpd.smtp import SMTP as StockSMTP
from support import SUPPORT, free_port

from connectors.email import smtp
from core.blobs import BlobStore
from core.bus import Bus
from core.envelope import Envelope
from ticket_service.store import admin
from ticket_service.store.db import Database, migrate
from ticket_service.store.directory import AccountDirectory

MAX_SIZE = 4096
HEAD = b"From: zhang.wei@example.cn\r\nTo: help@acme.test\r\nSubject: x\r\n\r\n"


@pytest.fixture
async def server(sqlite_url, redis_url, tmp_path):
    db = Database(sqlite_url)
    await migrate(db)
    async with db.write() as conn:
        await admin.add_account(conn, await admin.create_tenant(conn, "acme"), "email", SUPPORT)
    client = aioredis.Redis.from_url(redis_url)
    port = free_port()
    srv = await smtp.serve(Bus(client, BlobStore(tmp_path / "blobs"), 256 * 1024), AccountDirectory(db),
                           "127.0.0.1", port, max_size=MAX_SIZE, hostname="mx.test")
    yield port, client
    srv.close()
    await srv.wait_closed()
    await client.aclose()
    await db.dispose()


class Kept:
    """A stock aiosmtpd handler that keeps each body as aiosmtpd read it."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.bodies.append(envelope.original_content)
        return "250 OK"


@pytest.fixture
async def stock():
    kept, port = Kept(), free_port()
    srv = await asyncio.get_running_loop().create_server(
        lambda: StockSMTP(kept, hostname="stock.test", data_size_limit=MAX_SIZE, enable_SMTPUTF8=True),
        "127.0.0.1", port)
    yield port, kept
    srv.close()
    await srv.wait_closed()


class Wire:
    """One SMTP session spoken in raw octets."""

    async def open(self, port: int) -> Wire:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
        self.writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        assert (await self.reply())[0] == 220
        assert (await self.command(b"EHLO client.example.cn"))[0] == 250
        return self

    async def reply(self) -> tuple[int, bytes]:
        while True:
            line = await asyncio.wait_for(self.reader.readuntil(b"\r\n"), 10)
            if line[3:4] != b"-":
                return int(line[:3]), line[4:-2]

    async def command(self, line: bytes) -> tuple[int, bytes]:
        self.writer.write(line + b"\r\n")
        return await self.reply()

    async def send(self, data: bytes, pieces: list[int] = ()) -> tuple[int, bytes]:
        """MAIL, RCPT, DATA, then ``data`` (its end line included) cut at ``pieces``; the answer."""
        assert (await self.command(b"MAIL FROM:<zhang.wei@example.cn> BODY=8BITMIME SMTPUTF8"))[0] == 250
        assert (await self.command(b"RCPT TO:<" + SUPPORT.encode() + b">"))[0] == 250
        assert (await self.command(b"DATA"))[0] == 354
        await self.write_in_pieces(data, pieces)
        return await self.reply()

    async def write_in_pieces(self, data: bytes, pieces) -> None:
        last = 0
        for cut in [*pieces, len(data)]:
            self.writer.write(data[last:cut])
            await self.writer.drain()
            await asyncio.sleep(0.02)  # its own segment: the server reads what came so far
            last = cut

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


async def _payloads(client) -> list[bytes]:
    return [Envelope.unpack(f[b"e"]).payload for _, f in await client.xrange("ingest.email")]


async def test_stuffed_dots_and_a_lone_dot_arrive_unstuffed(server):
    # RFC 5321 §4.5.2: a line "." of the mail is sent as "..", any leading dot is doubled.
    port, client = server
    wire = await Wire().open(port)
    code, _ = await wire.send(HEAD + b"..leading\r\n..\r\n...\r\nlast line.\r\n.\r\n")
    assert code == 250
    await wire.close()
    assert await _payloads(client) == [HEAD + b".leading\r\n.\r\n..\r\nlast line.\r\n"]


@pytest.mark.parametrize("pieces", [[-5], [-4], [-3], [-2], [-1], [-5, -4, -3, -2, -1]])
async def test_the_end_line_cut_across_tcp_reads_still_ends_the_mail(server, pieces):
    port, client = server
    data = HEAD + b"body\r\n.\r\n"
    wire = await Wire().open(port)
    assert (await wire.send(data, [len(data) + p for p in pieces]))[0] == 250
    assert (await wire.send(data, [len(data) + p for p in pieces]))[0] == 250  # again, same session
    await wire.close()
    assert await _payloads(client) == [HEAD + b"body\r\n"] * 2


async def test_over_the_limit_mid_body_gets_552_after_the_end_and_the_session_goes_on(server):
    port, client = server
    big = HEAD + b"z" * 70 + b"\r\n" + (b"y" * 70 + b"\r\n") * 100 + b".\r\n"  # 7 KiB against 4 KiB
    wire = await Wire().open(port)
    # Answered only once the whole body is in (RFC 5321 §4.2.5), cut anywhere along the way.
    assert await wire.send(big, list(range(500, len(big), 1000))) == (552, b"Error: Too much mail data")
    assert (await wire.send(HEAD + b"small\r\n.\r\n"))[0] == 250
    assert (await wire.command(b"QUIT"))[0] == 221
    await wire.close()
    assert await _payloads(client) == [HEAD + b"small\r\n"]


async def test_commands_pipelined_after_the_end_line_are_each_answered(server):
    # RFC 2920: what follows the end line in the same segment is the next commands, untouched.
    port, client = server
    wire = await Wire().open(port)
    assert (await wire.command(b"MAIL FROM:<zhang.wei@example.cn>"))[0] == 250
    assert (await wire.command(b"RCPT TO:<" + SUPPORT.encode() + b">"))[0] == 250
    assert (await wire.command(b"DATA"))[0] == 354
    wire.writer.write(HEAD + b"pipelined\r\n.\r\nRSET\r\nNOOP\r\nQUIT\r\n")
    assert [(await wire.reply())[0] for _ in range(4)] == [250, 250, 250, 221]
    await wire.close()
    assert await _payloads(client) == [HEAD + b"pipelined\r\n"]


async def test_eight_bit_bodies_are_kept_byte_for_byte(server):
    # RFC 6152 8BITMIME and RFC 6531 SMTPUTF8: every octet but the line ends is data.
    port, client = server
    body = ("您好，订单还没有发货。\r\n".encode() + "您好".encode("gbk") + b"\r\n"
            + bytes(range(256)) + b"\r\n" + b"\xff.\xfe\r\n")
    wire = await Wire().open(port)
    assert (await wire.send(HEAD + body + b".\r\n", [len(HEAD) + 7, len(HEAD) + 300]))[0] == 250
    await wire.close()
    assert await _payloads(client) == [HEAD + body]


# Bare LF, bare CR and dots around them; an empty body; a dot-only first line.
ODD = [
    b"a\n.\r\nb\n..c\r\n.\r\n",
    b"a\r\r\n.\r\n",
    b"\n.\n\r\n.\r\n",
    b".\r\n",
    b"..\r\n.\r\n",
    b"\r\n.\r\n",
    b"x\r\n.\n.\r\n.\r\n",
]


async def test_odd_line_ends_read_as_aiosmtpd_reads_them(server, stock):
    port, client = server
    stock_port, kept = stock
    ours, theirs = await Wire().open(port), await Wire().open(stock_port)
    for data in ODD:
        cuts = [len(data) // 2]
        assert (await ours.send(data, cuts))[0] == 250
        assert (await theirs.send(data, cuts))[0] == 250
    await ours.close()
    await theirs.close()
    assert await _payloads(client) == kept.bodies
    assert kept.bodies[:2] == [b"a\n.\r\nb\n..c\r\n", b"a\r\r\n"]
