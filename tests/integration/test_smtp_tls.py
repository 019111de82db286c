"""SMTP STARTTLS (RFC 3207) with a throwaway CA: smtplib upgrades, sends, and the mail is on the stream."""

import asyncio
import smtplib
import ssl
import subprocess
import sys

import pytest
import redis.asyncio as aioredis
from support import SUPPORT, free_port, make_mail, role_env, wait_for
from tls_certs import make_certs

from connectors.email import smtp
from connectors.email import tls as email_tls
from core.blobs import BlobStore
from core.bus import Bus
from core.envelope import Envelope
from core.settings import SettingsError
from ticket_service.store import admin
from ticket_service.store.db import Database, migrate
from ticket_service.store.directory import AccountDirectory

SWITCHBOARD = [sys.executable, "-m", "ops.cli"]


@pytest.fixture
def certs(tmp_path):
    return make_certs(tmp_path / "tls")


@pytest.fixture
async def mailbox_db(sqlite_url):
    db = Database(sqlite_url)
    await migrate(db)
    async with db.write() as conn:
        await admin.add_account(conn, await admin.create_tenant(conn, "acme"), "email", SUPPORT)
    yield db
    await db.dispose()


@pytest.fixture
async def serve_tls(mailbox_db, redis_url, tmp_path, certs):
    """Start the SMTP server with STARTTLS on; yields (start(require_tls) -> port, redis client)."""
    client = aioredis.Redis.from_url(redis_url)
    bus = Bus(client, BlobStore(tmp_path / "blobs"), 256 * 1024)
    servers = []

    async def start(require_tls: bool = False) -> int:
        port = free_port()
        context = email_tls.server_context(str(certs.cert), str(certs.key), required=require_tls)
        servers.append(await smtp.serve(bus, AccountDirectory(mailbox_db), "127.0.0.1", port, max_size=1 << 20,
                                        hostname="mx.test", tls_context=context, require_tls=require_tls))
        return port

    yield start, client
    for srv in servers:
        srv.close()
        await srv.wait_closed()
    await client.aclose()


def _wire() -> bytes:
    return make_mail(subject="Over TLS", msgid="<over-tls@example.cn>")[0].replace(b"\n", b"\r\n")


def _starttls_send(port: int, ca) -> tuple[bool, str]:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.ehlo("client.example.cn")
        offered = c.has_extn("starttls")
        c.starttls(context=ssl.create_default_context(cafile=str(ca)))
        version = c.sock.version()
        c.ehlo("client.example.cn")
        assert c.sendmail("zhang.wei@example.cn", [SUPPORT], _wire()) == {}
        return offered, version


async def _payloads(client) -> list[bytes]:
    return [Envelope.unpack(f[b"e"]).payload for _, f in await client.xrange("ingest.email")]


async def test_starttls_is_offered_and_mail_sent_over_it_lands_on_the_stream(serve_tls, certs):
    # The client checks the server certificate against the test CA, as an MTA-STS sender would.
    start, client = serve_tls
    offered, version = await asyncio.to_thread(_starttls_send, await start(), certs.ca)
    assert offered and version in ("TLSv1.2", "TLSv1.3")
    assert await _payloads(client) == [_wire()]


async def test_with_tls_required_mail_before_starttls_gets_530_and_nothing_is_queued(serve_tls, certs):
    start, client = serve_tls
    port = await start(require_tls=True)

    def plain_mail():
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
            c.ehlo("client.example.cn")
            return c.mail("zhang.wei@example.cn")

    code, text = await asyncio.to_thread(plain_mail)
    assert (code, text) == (530, b"Must issue a STARTTLS command first")
    assert await client.xlen("ingest.email") == 0
    await asyncio.to_thread(_starttls_send, port, certs.ca)
    assert await _payloads(client) == [_wire()]


def test_certificate_settings_are_checked_before_listening(certs, tmp_path):
    with pytest.raises(SettingsError, match=r"smtp_tls_cert=.*missing\.pem.*cannot load them"):
        email_tls.server_context(str(tmp_path / "missing.pem"), str(certs.key))
    with pytest.raises(SettingsError, match="cannot load them"):  # a key that is not this certificate's
        email_tls.server_context(str(certs.cert), str(make_certs(tmp_path / "other").key))
    with pytest.raises(SettingsError, match="go together"):
        email_tls.server_context(str(certs.cert), "")
    with pytest.raises(SettingsError, match="smtp_require_tls needs"):
        email_tls.server_context("", "", required=True)
    assert email_tls.server_context("", "") is None


def test_smtp_role_with_an_unreadable_certificate_exits_with_the_reason(tmp_path, redis_url, sqlite_url, certs):
    env = role_env(tmp_path / "data", redis_url, sqlite_url, smtp_port=free_port(),
                   smtp_tls_cert=tmp_path / "nope.pem", smtp_tls_key=certs.key)
    (tmp_path / "data").mkdir()
    done = subprocess.run([*SWITCHBOARD, "smtp"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"smtp_tls_cert={tmp_path / 'nope.pem'}" in done.stderr and "No such file" in done.stderr


def test_smtp_role_offers_starttls_from_its_settings(tmp_path, redis_url, sqlite_url, certs):
    # The role process (uvloop, settings from the environment): STARTTLS, then a mail on the stream.
    import redis

    subprocess.run([*SWITCHBOARD, "tenant", "create", "acme"], env=role_env(tmp_path / "data", redis_url, sqlite_url),
                   check=True, capture_output=True)
    port = free_port()
    env = role_env(tmp_path / "data", redis_url, sqlite_url, smtp_port=port, smtp_tls_cert=certs.cert,
                   smtp_tls_key=certs.key, smtp_require_tls="true")
    subprocess.run([*SWITCHBOARD, "account", "add", "--tenant", "acme", "email", SUPPORT], env=env, check=True,
                   capture_output=True)
    proc = subprocess.Popen([*SWITCHBOARD, "smtp"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _answers(port), what="smtp role")
        offered, _ = _starttls_send(port, certs.ca)
    finally:
        proc.terminate()
        proc.wait(15)
    assert offered
    entries = redis.Redis.from_url(redis_url).xrange("ingest.email")
    assert [Envelope.unpack(f[b"e"]).payload for _, f in entries] == [_wire()]


def _answers(port: int) -> bool:
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=1):
            return True
    except OSError:
        return False
