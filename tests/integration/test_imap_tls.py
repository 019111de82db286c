"""IMAP over TLS against a real Dovecot with a throwaway CA: STARTTLS, implicit TLS, and refusals."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from dovecot import PASSWORD, Dovecot
from structlog.testing import capture_logs
from support import SUPPORT, make_mail
from tls_certs import make_certs

from connectors.email.imap import ImapPoller
from connectors.email.imap.client import ImapFailure, ImapSession
from connectors.email.tls import client_context
from core.credentials import seal
from core.envelope import Envelope
from core.settings import SettingsError
from ticket_service.store import mailboxes

SECRET = "imap-tls-test-secret"
HOST = "127.0.0.2"  # not Dovecot's client address, so it holds this connection to ssl = required


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tls_dovecot(certs):
    """Dovecot with STARTTLS on its IMAP port, implicit TLS on its IMAPS port, no login before TLS."""
    server = Dovecot(certs, tls_required=True, address=HOST).start()
    yield server
    server.close()


def _user() -> str:
    return f"u{uuid.uuid4().hex[:10]}@acme.test"


async def _open(port: int, user: str, security: str, tls, host: str = HOST) -> ImapSession:
    session = ImapSession(host, port, security=security, tls=tls, timeout=5.0)
    try:
        await session.open(user, PASSWORD, "INBOX")
    except BaseException:
        await session.close()
        raise
    return session


async def test_starttls_checks_the_certificate_against_the_ca_then_fetches(tls_dovecot, certs):
    user = _user()
    raw = make_mail(subject="Fetched over STARTTLS")[0].replace(b"\n", b"\r\n")
    [uid] = await asyncio.to_thread(tls_dovecot.append, user, raw)
    session = await _open(tls_dovecot.port, user, "starttls", client_context(str(certs.ca)))
    try:
        assert session.tls_version in ("TLSv1.2", "TLSv1.3")
        assert session.supports_idle  # capabilities asked for again after TLS (RFC 3501 §6.2.1)
        assert await session.uids_after(0) == [uid]
        assert await session.fetch(uid) == raw
    finally:
        await session.close()


async def test_implicit_tls_on_the_imaps_port(tls_dovecot, certs):
    user = _user()
    [uid] = await asyncio.to_thread(tls_dovecot.append, user, make_mail()[0])
    session = await _open(tls_dovecot.imaps_port, user, "ssl", client_context(str(certs.ca)))
    try:
        assert session.tls_version in ("TLSv1.2", "TLSv1.3")
        assert await session.uids_after(0) == [uid]
    finally:
        await session.close()


async def test_a_certificate_from_an_unknown_ca_is_refused_unless_verification_is_off(tls_dovecot):
    with pytest.raises(ImapFailure, match="tls handshake: .*CERTIFICATE_VERIFY_FAILED"):
        await _open(tls_dovecot.port, _user(), "starttls", client_context())
    session = await _open(tls_dovecot.port, _user(), "starttls", client_context(verify=False))
    try:
        assert session.tls_version in ("TLSv1.2", "TLSv1.3")
    finally:
        await session.close()


async def test_a_plain_text_mailbox_on_a_server_requiring_tls_fails_clearly(tls_dovecot):
    with pytest.raises(ImapFailure, match="LOGINDISABLED.*security=none; use starttls or ssl"):
        await _open(tls_dovecot.port, _user(), "none", None)


async def test_starttls_asked_for_never_falls_back_to_plain_text(dovecot):
    # The session Dovecot offers no STARTTLS: the poller stops before LOGIN instead of going plain.
    with pytest.raises(ImapFailure, match="does not offer STARTTLS; not logging in without TLS"):
        await _open(dovecot.port, _user(), "starttls", client_context(), host="127.0.0.1")


async def _register(system, port: int, user: str, **imap) -> None:
    async with system.db.write() as conn:
        await mailboxes.set_imap(conn, system.tenant, SUPPORT, mailboxes.imap_settings(HOST, port, user, **imap),
                                 seal(SECRET, PASSWORD))


async def _run_poller(system, until) -> None:
    async def load():
        async with system.db.read() as conn:
            return await mailboxes.imap_mailboxes(conn)

    stop = asyncio.Event()
    task = asyncio.create_task(ImapPoller(system.bus, system.settings, load).run(stop))
    try:
        async with asyncio.timeout(15):
            while not await until():
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


@pytest.fixture
def tls_system(system, certs):
    system.settings = system.settings.replace(secret_key=SECRET, imap_timeout_s=3.0, imap_refresh_s=0.2,
                                              imap_backoff_max_s=0.5, imap_tls_ca=str(certs.ca))
    return system


async def test_poller_fetches_a_mailbox_on_port_143_style_over_starttls_by_default(tls_system, tls_dovecot):
    # Registered without a security mode on a port other than 993: STARTTLS, checked against the CA.
    user = _user()
    await _register(tls_system, tls_dovecot.port, user)
    [mailbox] = await _mailboxes(tls_system)
    assert (mailbox.security, mailbox.tls_verify) == ("starttls", True)
    raw = make_mail(subject="Poller over STARTTLS")[0].replace(b"\n", b"\r\n")
    await asyncio.to_thread(tls_dovecot.append, user, raw)
    with capture_logs() as logs:
        await _run_poller(tls_system, lambda: tls_system.bus.redis.xlen("ingest.email"))
    [entry] = await tls_system.bus.redis.xrange("ingest.email")
    assert Envelope.unpack(entry[1][b"e"]).payload == raw
    connected = [e for e in logs if e["event"] == "imap.connected"]
    assert connected and connected[0]["tls"] in ("TLSv1.2", "TLSv1.3")


async def test_poller_with_a_plain_text_mailbox_on_a_tls_only_server_takes_nothing_and_says_why(
        tls_system, tls_dovecot):
    user = _user()
    await _register(tls_system, tls_dovecot.port, user, security="none")
    await asyncio.to_thread(tls_dovecot.append, user, make_mail()[0])

    async def refused():
        return any(e["event"] == "imap.reconnect" for e in logs)

    with capture_logs() as logs:
        await _run_poller(tls_system, refused)
    [reason] = {e["error"] for e in logs if e["event"] == "imap.reconnect"}
    assert "LOGINDISABLED" in reason
    assert await tls_system.bus.redis.xlen("ingest.email") == 0


async def test_poller_with_an_unreadable_ca_file_stops_at_start(tls_system, tmp_path):
    settings = tls_system.settings.replace(imap_tls_ca=str(tmp_path / "missing-ca.pem"))

    async def load():
        return []

    with pytest.raises(SettingsError, match=r"imap_tls_ca=.*missing-ca\.pem: cannot load it"):
        await ImapPoller(tls_system.bus, settings, load).run(asyncio.Event())


async def _mailboxes(system):
    async with system.db.read() as conn:
        return await mailboxes.imap_mailboxes(conn)
