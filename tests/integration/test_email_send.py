"""Email replies over a real SMTP server in its own process, into the outbox Maildir, DKIM-signed,
and read back by Switchboard's own inbound parser."""

from __future__ import annotations

import base64
import json
import os
import socket
import stat
import subprocess
import sys
from dataclasses import dataclass
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select
from support import SUPPORT, free_port, make_mail, wait_for
from tls_certs import make_certs

from connectors.email import parse
from connectors.email.maildir import key_for
from connectors.email.reply_tokens import token_places
from connectors.email.send import send
from core.envelope import Envelope
from core.outbound import OutboundFile, Outgoing, PermanentFailure, TemporaryFailure
from core.settings import load
from ticket_service.store import admin, reply_tokens
from ticket_service.store.db import Database, migrate
from ticket_service.store.tables import channel_accounts

SINK = Path(__file__).resolve().parents[1] / "smtp_sink.py"
SECRET = "reply-token-secret"
PDF = b"%PDF-1.4\n\x00\xff binary \r\n bytes"


@dataclass
class Context:
    """The sender's port as the sender worker fills it."""

    settings: Any
    redis: Any = None
    http: Any = None


class SinkServer:
    def __init__(self, folder: Path, port: int, proc: subprocess.Popen) -> None:
        self.folder, self.port, self.proc = folder, port, proc

    def received(self) -> list[tuple[bytes, dict]]:
        names = sorted(self.folder.glob("*.json"), key=lambda p: int(p.stem))
        return [(p.with_suffix(".eml").read_bytes(), json.loads(p.read_text())) for p in names]


@pytest.fixture
def start_sink(tmp_path):
    procs = []

    def start(*args: str) -> SinkServer:
        folder, port = tmp_path / f"sink{len(procs)}", free_port()
        proc = subprocess.Popen([sys.executable, str(SINK), "--port", str(port), "--folder", str(folder), *args])
        procs.append(proc)
        wait_for(lambda: _accepts(port), what="the SMTP sink")
        return SinkServer(folder, port, proc)

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(10)


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def outgoing(**changes) -> Outgoing:
    reply = reply_tokens.issue(SECRET, 1, 5, SUPPORT)
    base = dict(
        outbox_id=11, tenant_id=1, tenant="acme", ticket_id=5, ticket_number=7, message_id=31, channel="email",
        account_id=2, account_address=SUPPORT, account_settings={"from_name": "Acme 客服"},
        to="zhang.wei@example.cn", to_name="张伟", subject="订单 1042 退款", text="您好，退款已处理。\nThanks",
        html="<p>您好，<b>退款</b>已处理。</p>", attachments=(OutboundFile("发票.pdf", "application/pdf", PDF),),
        in_reply_to="<CAF+a-customer-message-id-that-is-quite-long-0123456789abcdef0123456789@mail.example.cn>",
        references=("<first@example.cn>",), handle=reply.message_id, reply_to=reply.reply_to,
    )
    return Outgoing(**(base | changes))


def settings(tmp_path: Path, relay: str = ""):
    return load(env={}).replace(data_dir=tmp_path / "data", smtp_relay=relay)


def _parts(raw: bytes) -> dict[str, Any]:
    msg = message_from_bytes(raw, policy=policy.default)
    found = {"msg": msg}
    for part in msg.walk():
        if part.get_content_disposition() == "attachment":
            found[part.get_filename()] = part.get_content()
        elif part.get_content_type() in ("text/plain", "text/html"):
            found[part.get_content_type()] = part.get_content()
    return found


async def test_reply_through_the_relay_carries_threading_headers_both_bodies_and_the_file(tmp_path, start_sink):
    # The relay gets MAIL FROM = the mailbox, one RCPT, and a mail the customer's client threads.
    sink = start_sink()
    out = outgoing()
    sent = await send(out, Context(settings(tmp_path, f"smtp://127.0.0.1:{sink.port}")))
    [(raw, env)] = sink.received()
    assert sent.platform_id == "2.0.0 Ok: queued as Q1" and sent.status == "sent"
    assert env["mail_from"] == SUPPORT and env["rcpt_tos"] == ["zhang.wei@example.cn"]
    got = _parts(raw)
    msg = got["msg"]
    assert str(msg["From"]) == "Acme 客服 <help@acme.test>" and str(msg["To"]) == "张伟 <zhang.wei@example.cn>"
    assert str(msg["Subject"]) == "Re: 订单 1042 退款 [#7]" and raw.isascii()  # RFC 2047, no raw UTF-8
    assert msg["Message-ID"] == out.handle and msg["In-Reply-To"] == out.in_reply_to
    assert msg["References"].split() == ["<first@example.cn>", out.in_reply_to]
    assert msg["Reply-To"] == out.reply_to and msg["X-Switchboard-Ticket"] == "7"
    assert msg["Auto-Submitted"] is None and msg["Date"] is not None
    assert got["text/plain"].replace("\r\n", "\n") == "您好，退款已处理。\nThanks\n"
    assert got["text/html"].strip() == "<p>您好，<b>退款</b>已处理。</p>"
    assert got["发票.pdf"] == PDF and msg.get_content_type() == "multipart/mixed"


async def test_text_only_reply_is_a_single_part(tmp_path, start_sink):
    # No HTML: no multipart/alternative, just text/plain.
    sink = start_sink()
    await send(outgoing(html="", attachments=(), subject="Re: where is it"),
               Context(settings(tmp_path, f"smtp://127.0.0.1:{sink.port}")))
    msg = _parts(sink.received()[0][0])["msg"]
    assert msg.get_content_type() == "text/plain" and str(msg["Subject"]) == "Re: where is it [#7]"


async def test_login_after_starttls_with_an_encoded_password(tmp_path, start_sink):
    # The relay demands STARTTLS before AUTH; '@' and ':' arrive percent-encoded in the URL.
    certs = make_certs(tmp_path / "certs")
    sink = start_sink("--cert", str(certs.cert), "--key", str(certs.key), "--login", "ops@acme.test:p@ss:w/rd")
    url = f"smtp://ops%40acme.test:p%40ss%3Aw%2Frd@localhost:{sink.port}?starttls=true&ca={certs.ca}"
    await send(outgoing(), Context(settings(tmp_path, url)))
    [(_, env)] = sink.received()
    assert env["tls"] is True and env["login"] == "ops@acme.test"
    wrong = f"smtp://ops%40acme.test:nope@localhost:{sink.port}?starttls=true&ca={certs.ca}"
    with pytest.raises(PermanentFailure) as refused:
        await send(outgoing(), Context(settings(tmp_path, wrong)))
    assert refused.value.code == "smtp_5xx" and refused.value.message.startswith("535")
    assert len(sink.received()) == 1


async def test_untrusted_relay_certificate_is_a_temporary_connect_failure(tmp_path, start_sink):
    # Without the CA the client cannot verify the relay: nothing is sent, try again later.
    certs = make_certs(tmp_path / "certs")
    sink = start_sink("--cert", str(certs.cert), "--key", str(certs.key))
    with pytest.raises(TemporaryFailure) as failed:
        await send(outgoing(), Context(settings(tmp_path, f"smtp://localhost:{sink.port}?starttls=true")))
    assert failed.value.code == "connect" and "certificate" in failed.value.message.lower()
    assert sink.received() == []


@pytest.mark.parametrize(("answer", "kind", "code"), [
    ("451 4.3.0 Mailbox busy, try later", TemporaryFailure, "smtp_4xx"),
    ("550 5.1.1 No such user here", PermanentFailure, "smtp_5xx"),
])
async def test_recipient_refusal_maps_to_its_class(tmp_path, start_sink, answer, kind, code):
    # RFC 5321 §4.2.1: 4yz is retried, 5yz fails for good, with the relay's own words.
    sink = start_sink("--answer", answer)
    with pytest.raises(kind) as failed:
        await send(outgoing(), Context(settings(tmp_path, f"smtp://127.0.0.1:{sink.port}")))
    assert failed.value.code == code and failed.value.message == answer
    assert sink.received() == []


async def test_unreachable_relay_is_a_temporary_connect_failure(tmp_path):
    # Nothing listens on the port.
    with pytest.raises(TemporaryFailure) as failed:
        await send(outgoing(), Context(settings(tmp_path, f"smtp://127.0.0.1:{free_port()}")))
    assert failed.value.code == "connect" and failed.value.message


async def test_misconfigured_relay_url_is_a_temporary_failure_naming_the_problem(tmp_path):
    with pytest.raises(TemporaryFailure) as failed:
        await send(outgoing(), Context(settings(tmp_path, "smtp://relay.test?tls=yes")))
    assert failed.value.code == "relay_config" and "'tls'" in failed.value.message


async def test_non_ascii_address_travels_as_smtputf8(tmp_path, start_sink):
    # RFC 6531: an internationalised mailbox needs SMTPUTF8 on MAIL and raw UTF-8 headers.
    sink = start_sink()
    await send(outgoing(to="张伟@example.cn"), Context(settings(tmp_path, f"smtp://127.0.0.1:{sink.port}")))
    [(raw, env)] = sink.received()
    assert "SMTPUTF8" in env["mail_options"] and env["rcpt_tos"] == ["张伟@example.cn"]
    assert "To: 张伟 <张伟@example.cn>".encode() in raw


async def test_without_a_relay_the_reply_lands_once_in_the_outbox_maildir(tmp_path):
    # A retry of the same reply (same handle) does not write a second mail.
    ctx, out = Context(settings(tmp_path)), outgoing()
    first = await send(out, ctx)
    again = await send(outgoing(attempt=2, handle=out.handle, reply_to=out.reply_to), ctx)
    box = tmp_path / "data" / "outbox"
    files = list((box / "new").iterdir())
    assert first.platform_id == again.platform_id == key_for(out.handle) == files[0].name and len(files) == 1
    assert list((box / "tmp").iterdir()) == [] and (box / "cur").is_dir()
    assert stat.S_IMODE(os.stat(box).st_mode) == 0o700
    assert out.handle.strip("<>").split(".")[0] not in files[0].name  # no token in the name
    msg = _parts(files[0].read_bytes())["msg"]
    assert msg["Message-ID"] == out.handle and str(msg["Subject"]) == "Re: 订单 1042 退款 [#7]"
    os.rename(files[0], box / "cur" / f"{files[0].name}:2,S")  # a mail client read it
    assert (await send(out, ctx)).platform_id == first.platform_id
    assert list((box / "new").iterdir()) == []


def _dkim_key() -> tuple[str, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption()).decode()
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem, b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)


async def test_dkim_signature_verifies_against_the_published_key(tmp_path, start_sink):
    # dkimpy's own verifier, its DNS lookup answered with the record the domain would publish.
    pem, record = _dkim_key()
    sink = start_sink()
    out = outgoing(account_settings={"dkim_selector": "sb2026", "dkim_private_key": pem})
    await send(out, Context(settings(tmp_path, f"smtp://127.0.0.1:{sink.port}")))
    [(raw, _)] = sink.received()
    asked = []

    def dns(name: bytes, timeout: int = 5) -> bytes:
        asked.append(name)
        return record

    assert dkim.verify(raw, dnsfunc=dns) is True
    assert asked == [b"sb2026._domainkey.acme.test."]
    signature = message_from_bytes(raw, policy=policy.default)["DKIM-Signature"]
    signed = {h.strip().lower() for h in signature.split("h=")[1].split(";")[0].replace(" ", "").split(":")}
    assert {"from", "to", "subject", "date", "message-id", "in-reply-to", "references",
            "mime-version", "content-type"} <= signed
    tampered = raw.replace(b"Reply-To: help+", b"Reply-To: evil+", 1)
    assert tampered != raw and dkim.verify(tampered, dnsfunc=dns) is False


async def test_dkim_without_a_selector_is_a_temporary_failure_not_an_unsigned_mail(tmp_path):
    pem, _ = _dkim_key()
    with pytest.raises(TemporaryFailure) as failed:
        await send(outgoing(account_settings={"dkim_private_key": pem}), Context(settings(tmp_path)))
    assert failed.value.code == "dkim_key"
    assert not (tmp_path / "data" / "outbox" / "new").exists() or not any((tmp_path / "data" / "outbox" / "new").iterdir())


async def test_dkim_key_is_sealed_at_rest_and_opened_for_the_sender(sqlite_url):
    pem, _ = _dkim_key()
    db = Database(sqlite_url)
    await migrate(db)
    async with db.write() as conn:
        tenant = await admin.create_tenant(conn, "acme")
        await admin.add_account(conn, tenant, "email", SUPPORT, {"dkim_selector": "s1", "dkim_private_key": pem},
                                secret_key=SECRET)
        account = await admin.find_account(conn, "email", SUPPORT)
        row = (await conn.execute(select(channel_accounts.c.settings))).scalar_one()
    await db.dispose()
    assert row["dkim_selector"] == "s1" and "dkim_private_key" not in row and pem not in json.dumps(row)
    assert admin.open_secrets(account, SECRET).settings == {"dkim_selector": "s1", "dkim_private_key": pem}


async def test_the_customers_answer_to_a_sent_reply_carries_our_token_back(tmp_path):
    # Our parser reads the sent mail (ticket number in the subject); the customer's client
    # answers to Reply-To with In-Reply-To = our Message-ID; both places hold the token.
    out = outgoing()
    await send(out, Context(settings(tmp_path)))
    [path] = (tmp_path / "data" / "outbox" / "new").iterdir()
    [ours] = parse(Envelope(tenant="acme", channel="email", account="2", payload=path.read_bytes()))
    assert ours.ticket_number == 7 and ours.subject == "Re: 订单 1042 退款 [#7]"
    sent = message_from_bytes(path.read_bytes(), policy=policy.default)
    answer, _ = make_mail(subject=str(sent["Subject"]), to=str(sent["Reply-To"]),
                          refs=[*sent["References"].split(), sent["Message-ID"]])
    [inbound] = parse(Envelope(tenant="acme", channel="email", account="2", payload=answer))
    assert inbound.ticket_number == 7
    assert inbound.thread_refs[0] == out.handle.strip("<>")
    assert reply_tokens.verified_ticket_ids(SECRET, 1, token_places(inbound)) == [5]
