"""An email conversation end to end: the customer's mail over SMTP into Switchboard's own SMTP
server, an agent's reply through the API, the sender delivering it to a real SMTP relay in its
own process, and the customer's answer to that reply (over SMTP, or fetched from a real
Dovecot over IMAP) threaded back onto the same ticket."""

from __future__ import annotations

import asyncio
import json
import smtplib
import socket
import subprocess
import sys
from email import message_from_bytes, policy
from email.utils import getaddresses
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from outbox_support import Outbound
from support import SUPPORT, free_port, make_mail, wait_for
from test_imap import poller_running, stream_len

from connectors.email import smtp
from connectors.registry import capacity_classes
from core.credentials import seal
from ticket_service.api import setup_api
from ticket_service.store import admin, mailboxes, reply_tokens
from ticket_service.store.directory import AccountDirectory

SINK = Path(__file__).resolve().parents[1] / "smtp_sink.py"
SECRET = "roundtrip-secret"
CUSTOMER = "zhang.wei@example.cn"


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def _smtp_send(port: int, rcpt: str, raw: bytes) -> dict:
    wire = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        return client.sendmail(CUSTOMER, [rcpt], wire)


@pytest.fixture
def sink(tmp_path):
    """tests/smtp_sink.py in its own process: the relay the sender hands replies to."""
    folder, port = tmp_path / "sink", free_port()
    proc = subprocess.Popen([sys.executable, str(SINK), "--port", str(port), "--folder", str(folder)])
    wait_for(lambda: _accepts(port), what="the SMTP sink")
    yield port, folder
    proc.terminate()
    proc.wait(10)


@pytest.fixture
async def conversation(system, sink, tmp_path):
    """A ticket opened by mail over SMTP and an agent's reply delivered to the relay."""
    relay_port, folder = sink
    system.settings = system.settings.replace(secret_key=SECRET, smtp_relay=f"smtp://127.0.0.1:{relay_port}")
    port = free_port()
    server = await smtp.serve(system.bus, AccountDirectory(system.db), "127.0.0.1", port,
                              max_size=1 << 20, hostname="mx.acme.test")
    async with system.db.write() as conn:
        key = await admin.create_api_key(conn, system.tenant)
    app = web.Application()
    setup_api(app, system.db, system.bus.blobs, capacity_classes(), secret_key=SECRET, reply_limit=256 * 1024)
    http = TestClient(TestServer(app))
    await http.start_server()
    try:
        raw, customer_id = make_mail(subject="Refund for order 1042", sender=f"Zhang Wei <{CUSTOMER}>")
        assert await asyncio.to_thread(_smtp_send, port, SUPPORT, raw) == {}
        await system.drain()
        [ticket] = await system.tickets()
        world = Outbound(system, http, key, "", ticket.id)
        status, body = await world.post({"text": "Your refund was sent today."})
        assert status == 201
        await world.send_all()
        wait_for(lambda: list(folder.glob("*.json")), what="the reply at the relay")
        [eml] = folder.glob("*.eml")
        envelope = json.loads(eml.with_suffix(".json").read_text())
        world.smtp_port, world.ticket_number, world.customer_id = port, ticket.number, customer_id
        world.reply_id, world.envelope = body["id"], envelope
        world.received = message_from_bytes(eml.read_bytes(), policy=policy.default)
        yield world
    finally:
        await http.close()
        server.close()
        await server.wait_closed()


def _answer(world) -> tuple[bytes, str]:
    """The customer's client answering our reply: to its Reply-To, In-Reply-To its Message-ID."""
    ours = world.received["Message-ID"].strip("<>")
    return make_mail(subject=f"Re: {world.received['Subject']}", body="Thanks, it arrived.",
                     sender=f"Zhang Wei <{CUSTOMER}>", to=world.received["Reply-To"], refs=[ours])


async def test_the_reply_reaches_the_relay_with_headers_the_customer_threads_on(conversation):
    # From the mailbox written to, to the customer, [#N] in the subject, our signed token in Message-ID/Reply-To.
    world, mail = conversation, conversation.received
    [row] = await world.rows()
    token = reply_tokens.make_token(SECRET, world.system.tenant, world.ticket_id)
    assert (world.envelope["mail_from"], world.envelope["rcpt_tos"]) == (SUPPORT, [CUSTOMER])
    assert getaddresses([mail["From"]])[0][1] == SUPPORT
    assert getaddresses([mail["To"]])[0][1] == CUSTOMER
    assert mail["Subject"] == f"Re: Refund for order 1042 [#{world.ticket_number}]"
    assert mail["Message-ID"] == row.handle and token in row.handle
    assert mail["In-Reply-To"] == world.customer_id
    assert mail["References"].split() == [world.customer_id]
    assert mail["Reply-To"] == f"help+{token}@acme.test" == row.reply_to
    assert mail.get_content().strip() == "Your refund was sent today."
    delivery = (await world.ticket())["messages"][-1]["delivery"]
    assert (delivery["status"], delivery["attempts"]) == ("sent", 1)


async def test_the_customers_answer_over_smtp_to_the_reply_to_joins_the_same_ticket(conversation):
    # RCPT to our plus-address is accepted (RFC 5233 subaddress) and the signed token threads it.
    world = conversation
    raw, answer_id = _answer(world)
    assert await asyncio.to_thread(_smtp_send, world.smtp_port, world.received["Reply-To"], raw) == {}
    await world.system.drain()
    assert [t.id for t in await world.system.tickets()] == [world.ticket_id]
    last = (await world.system.messages())[-1]
    assert (last.ticket_id, last.direction, last.dedup_key) == (world.ticket_id, "in", answer_id.strip("<>"))
    assert [m["text"].strip() for m in (await world.ticket())["messages"]] == [
        "Hello, order 1042 has not arrived.", "Your refund was sent today.", "Thanks, it arrived."]


async def test_the_same_answer_fetched_over_imap_joins_the_same_ticket(conversation, dovecot, imap_user):
    # The support mailbox is also fetched from Dovecot; the answer delivered there threads the same way.
    world = conversation
    world.system.settings = world.system.settings.replace(
        imap_timeout_s=3.0, imap_lease_ms=2000, imap_refresh_s=0.2, imap_idle_s=60.0,
        imap_poll_interval_s=60.0, imap_backoff_max_s=1.0)
    world.system.user = imap_user
    async with world.system.db.write() as conn:
        await mailboxes.set_imap(conn, world.system.tenant, SUPPORT, mailboxes.imap_settings(
            "127.0.0.1", dovecot.port, imap_user, security="none"), seal(SECRET, "s3cret-imap"))
    raw, answer_id = _answer(world)
    before = await world.system.bus.redis.xlen("ingest.email")
    async with poller_running(world.system):
        await asyncio.to_thread(dovecot.append, imap_user, raw.replace(b"\n", b"\r\n"))
        await stream_len(world.system, before + 1)
    await world.system.drain()
    assert [t.id for t in await world.system.tickets()] == [world.ticket_id]
    last = (await world.system.messages())[-1]
    assert (last.ticket_id, last.direction, last.dedup_key) == (world.ticket_id, "in", answer_id.strip("<>"))
