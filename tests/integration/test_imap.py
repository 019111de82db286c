"""IMAP ingress against a real Dovecot: APPEND a mail, see it on the stream and as a ticket."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from contextlib import asynccontextmanager

import pytest
from dovecot import Dovecot
from support import SUPPORT, make_mail

from connectors.email.imap import ImapPoller
from core import keys, metrics
from core.credentials import seal
from core.envelope import Envelope
from ticket_service.store import mailboxes

SECRET = "imap-test-secret"


async def until(predicate, within: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def register(system, server: Dovecot, user: str, address: str = SUPPORT, **imap) -> int:
    async with system.db.write() as conn:
        return await mailboxes.set_imap(
            conn, system.tenant, address,
            mailboxes.imap_settings("127.0.0.1", server.port, user, security="none", **imap),
            seal(SECRET, "s3cret-imap"),
        )


@pytest.fixture
async def imap(system, dovecot, imap_user):
    """The system with its support address fetched from a fresh Dovecot user over IMAP."""
    system.settings = system.settings.replace(
        secret_key=SECRET, imap_timeout_s=3.0, imap_lease_ms=2000, imap_refresh_s=0.2,
        imap_idle_s=60.0, imap_poll_interval_s=60.0, imap_backoff_max_s=1.0,
    )
    system.user = imap_user
    await register(system, dovecot, imap_user)
    return system


@asynccontextmanager
async def poller_running(system, owner: str | None = None):
    async def load():
        async with system.db.read() as conn:
            return await mailboxes.imap_mailboxes(conn)

    stop = asyncio.Event()
    poller = ImapPoller(system.bus, system.settings, load, owner)
    task = asyncio.create_task(poller.run(stop))
    try:
        yield poller
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def stream(system, name: str = "ingest.email") -> list[Envelope]:
    return [Envelope.unpack(f[b"e"]) for _, f in await system.bus.redis.xrange(name)]


async def stream_len(system, n: int):
    async def check():
        return await system.bus.redis.xlen("ingest.email") >= n
    await until(check, what=f"{n} entries on ingest.email")


async def test_appended_mail_becomes_a_ticket_and_moves_the_checkpoint(imap, dovecot):
    # One mail APPENDed by another client: one envelope with its UID, then one ticket.
    raw, msgid = make_mail(subject="Parcel lost in Hangzhou")
    raw = raw.replace(b"\n", b"\r\n")  # as stored by the server (RFC 5322 line ends)
    async with poller_running(imap):
        [uid] = await asyncio.to_thread(dovecot.append, imap.user, raw)
        await stream_len(imap, 1)
    [env] = await stream(imap)
    status = dovecot.status(imap.user)
    assert (env.tenant, env.channel, env.account, env.payload) == ("acme", "email", str(imap.account), raw)
    assert env.meta["imap_uid"] == str(uid) == "1"
    assert env.meta["imap_uidvalidity"] == str(status["uidvalidity"])
    assert env.meta["rcpt_to"] == SUPPORT
    checkpoint = await imap.bus.redis.hgetall(keys.imap_checkpoint_key(imap.account, "INBOX"))
    assert checkpoint == {b"uidvalidity": str(status["uidvalidity"]).encode(), b"uid": b"1"}
    assert status["unseen"] == 1  # after=leave: BODY.PEEK left the mail unread
    await imap.drain()
    [ticket] = await imap.tickets()
    [message] = await imap.messages()
    assert ticket.subject == "Parcel lost in Hangzhou"
    assert (message.sender, message.dedup_key) == ("zhang.wei@example.cn", msgid.strip("<>"))


async def test_idle_delivers_within_a_second_of_append(imap, dovecot):
    # Polling is set to a minute, so only an IDLE push can bring the second mail in time.
    async with poller_running(imap):
        await asyncio.to_thread(dovecot.append, imap.user, make_mail(subject="first")[0])
        await stream_len(imap, 1)
        await asyncio.sleep(0.3)  # the poller is back in IDLE
        await asyncio.to_thread(dovecot.append, imap.user, make_mail(subject="second")[0])
        appended = time.monotonic()
        await until(lambda: _has(imap, 2), within=1.0, what="IDLE push within 1 s")
        assert time.monotonic() - appended <= 1.0
    assert [e.meta["imap_uid"] for e in await stream(imap)] == ["1", "2"]


async def _has(system, n: int) -> bool:
    return await system.bus.redis.xlen("ingest.email") >= n


async def test_after_ingest_marks_seen_or_moves_to_a_folder(imap, dovecot):
    # after=seen flags the mail; after=move:Done files it away; the stream gets each once.
    await register(imap, dovecot, imap.user, after="seen")
    async with poller_running(imap):
        await asyncio.to_thread(dovecot.append, imap.user, make_mail(subject="seen me")[0])
        await stream_len(imap, 1)
        await until(lambda: _status_is(dovecot, imap.user, "unseen", 0), what="\\Seen set")
    dovecot.doveadm("mailbox", "create", "-u", imap.user, "Done")
    await register(imap, dovecot, imap.user, after="move", move_to="Done")
    async with poller_running(imap):
        await asyncio.to_thread(dovecot.append, imap.user, make_mail(subject="move me")[0])
        await stream_len(imap, 2)
        await until(lambda: _status_is(dovecot, imap.user, "messages", 1, "Done"), what="moved to Done")
    assert dovecot.status(imap.user)["messages"] == 1  # only the seen one stays in INBOX
    assert [e.meta["imap_uid"] for e in await stream(imap)] == ["1", "2"]


async def _status_is(server: Dovecot, user: str, field: str, value: int, folder: str = "INBOX") -> bool:
    return (await asyncio.to_thread(server.status, user, folder))[field] == value


async def test_mail_delivered_days_ago_while_offline_is_still_taken_in(imap, dovecot):
    # No "since yesterday" fetch window: the UID checkpoint finds whatever came after it.
    async with poller_running(imap):
        await asyncio.to_thread(dovecot.append, imap.user, make_mail(subject="before the outage")[0])
        await stream_len(imap, 1)
    three_days_ago = time.time() - 3 * 86400
    await asyncio.to_thread(dovecot.append, imap.user, make_mail(subject="during the outage")[0],
                            when=three_days_ago)
    async with poller_running(imap):
        await stream_len(imap, 2)
    await imap.drain()
    assert [t.subject for t in await imap.tickets()] == ["before the outage", "during the outage"]


async def test_start_new_skips_what_the_folder_already_holds(imap, dovecot):
    # An old mailbox full of history: only mail arriving after the first connect is taken.
    await asyncio.to_thread(dovecot.append, imap.user, make_mail(subject="old 1")[0], make_mail(subject="old 2")[0])
    await register(imap, dovecot, imap.user, start="new")
    checkpoint = keys.imap_checkpoint_key(imap.account, "INBOX")
    async with poller_running(imap):
        await until(lambda: imap.bus.redis.hget(checkpoint, "uid"), what="checkpoint at the folder's end")
        await asyncio.to_thread(dovecot.append, imap.user, make_mail(subject="fresh")[0])
        await stream_len(imap, 1)
    assert [e.meta["imap_uid"] for e in await stream(imap)] == ["3"]


async def test_uidvalidity_reset_refetches_without_duplicate_tickets(imap, dovecot):
    # The server renumbers the folder: everything is fetched again, the store dedups it.
    raws = [make_mail(subject=f"case {i}", sender=f"c{i}@example.cn")[0] for i in range(3)]
    async with poller_running(imap):
        await asyncio.to_thread(dovecot.append, imap.user, *raws)
        await stream_len(imap, 3)
    await imap.drain()
    dovecot.doveadm("mailbox", "update", "-u", imap.user, "--uid-validity", "4242", "INBOX")
    async with poller_running(imap):
        await stream_len(imap, 6)
        await asyncio.to_thread(dovecot.append, imap.user, make_mail(subject="after the reset")[0])
        await stream_len(imap, 7)
    checkpoint = await imap.bus.redis.hgetall(keys.imap_checkpoint_key(imap.account, "INBOX"))
    assert checkpoint[b"uidvalidity"] == b"4242"
    await imap.drain()
    assert sorted(t.subject for t in await imap.tickets()) == ["after the reset", "case 0", "case 1", "case 2"]
    assert len(await imap.messages()) == 4


async def test_oversized_message_is_quarantined_with_its_uid_and_the_mailbox_moves_on(imap, dovecot):
    # A bad message between two good ones: the good ones are ticketed, the bad one parked.
    imap.settings = imap.settings.replace(max_message_size=4000)
    raws = [make_mail(subject="good 1")[0], make_mail(subject="huge", body="x" * 9000)[0],
            make_mail(subject="good 2")[0]]
    async with poller_running(imap):
        await asyncio.to_thread(dovecot.append, imap.user, *raws)
        await until(lambda: _dead(imap), what="quarantine entry")
        await stream_len(imap, 2)
    [(_, dead)] = await imap.bus.redis.xrange(keys.DEAD_IMAP)
    assert (dead[b"uid"], dead[b"account"], dead[b"folder"]) == (b"2", str(imap.account).encode(), b"INBOX")
    assert b"exceeds max_message_size" in dead[b"error"]
    assert [e.meta["imap_uid"] for e in await stream(imap)] == ["1", "3"]
    await imap.drain()
    assert sorted(t.subject for t in await imap.tickets()) == ["good 1", "good 2"]


async def _dead(system) -> bool:
    return await system.bus.redis.xlen(keys.DEAD_IMAP) == 1


async def test_two_pollers_on_one_mailbox_publish_each_message_once(imap, dovecot):
    # Both instances compete for the one mailbox; the lease lets exactly one fetch it.
    raws = [make_mail(subject=f"m{i}", sender=f"s{i}@example.cn")[0] for i in range(20)]
    async with poller_running(imap, "imap-a") as a, poller_running(imap, "imap-b") as b:
        await asyncio.to_thread(dovecot.append, imap.user, *raws[:10])
        await stream_len(imap, 10)
        await asyncio.to_thread(dovecot.append, imap.user, *raws[10:])
        await stream_len(imap, 20)
        await asyncio.sleep(0.5)  # a second fetch, if any, would land now
        holder = await imap.bus.redis.get(keys.imap_lease_key(imap.account, "INBOX"))
        assert holder in (b"imap-a", b"imap-b")
        assert len(a.held) + len(b.held) == 1
        held_by = a if a.held else b
        name = f"{imap.account}:INBOX"
        assert metrics.IMAP_LEASE_HELD.labels(name)._value.get() == 1
        assert holder.decode() == held_by.owner
    uids = [e.meta["imap_uid"] for e in await stream(imap)]
    assert uids == [str(u) for u in range(1, 21)]
    assert await imap.bus.redis.get(keys.imap_lease_key(imap.account, "INBOX")) is None  # released on stop


async def test_poller_recovers_when_the_server_comes_back(system):
    # Dovecot stops mid-session (IDLE dropped) and returns on the same port.
    server = Dovecot().start()
    try:
        user = server.add_user("back@acme.test")
        system.settings = system.settings.replace(
            secret_key=SECRET, imap_timeout_s=2.0, imap_lease_ms=2000, imap_refresh_s=0.2,
            imap_idle_s=60.0, imap_poll_interval_s=60.0, imap_backoff_max_s=0.5,
        )
        await register(system, server, user)
        async with poller_running(system):
            await asyncio.to_thread(server.append, user, make_mail(subject="before")[0])
            await stream_len(system, 1)
            await asyncio.to_thread(server.stop)
            await asyncio.sleep(1.0)  # the poller fails to reconnect a few times meanwhile
            await asyncio.to_thread(server.start)
            await asyncio.to_thread(server.append, user, make_mail(subject="after")[0])
            await stream_len(system, 2)
        assert [e.meta["imap_uid"] for e in await stream(system)] == ["1", "2"]
    finally:
        server.close()


async def test_hung_server_times_out_and_the_poller_reconnects(system):
    # The imap process serving the poller is frozen (SIGSTOP): the step deadline fires and a
    # fresh connection fetches the new mail.
    server = Dovecot().start()
    frozen: list[int] = []
    try:
        user = server.add_user("hung@acme.test")
        system.settings = system.settings.replace(
            secret_key=SECRET, imap_timeout_s=1.0, imap_lease_ms=2000, imap_refresh_s=0.2,
            imap_idle_s=1.0, imap_poll_interval_s=60.0, imap_backoff_max_s=0.5,
        )
        await register(system, server, user)
        async with poller_running(system):
            await asyncio.to_thread(server.append, user, make_mail(subject="before")[0])
            await stream_len(system, 1)
            frozen = server.session_pids()
            assert len(frozen) == 1
            for pid in frozen:
                os.kill(pid, signal.SIGSTOP)
            await asyncio.to_thread(server.append, user, make_mail(subject="while hung")[0])
            await stream_len(system, 2)
        assert [e.meta["imap_uid"] for e in await stream(system)] == ["1", "2"]
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
        server.close()


async def test_unreadable_message_is_quarantined_after_retries_and_never_stalls_the_mailbox(imap, dovecot):
    # The server cannot read one message file (a real FETCH failure): it is retried, then
    # parked in dead.imap with its UID, and the mail behind it still arrives.
    imap.settings = imap.settings.replace(imap_max_attempts=2, imap_backoff_max_s=0.2)
    raws = [make_mail(subject=f"m{i}", sender=f"s{i}@example.cn")[0] for i in range(3)]
    await asyncio.to_thread(dovecot.append, imap.user, *raws)
    [broken] = [p for p in (dovecot.root / "mail" / imap.user).rglob("*") if p.is_file() and b"Subject: m1" in p.read_bytes()]
    broken.chmod(0o000)
    try:
        async with poller_running(imap):
            await until(lambda: _dead(imap), what="quarantine entry")
            await stream_len(imap, 2)
    finally:  # Dovecot may have moved it from new/ to cur/ meanwhile
        for path in (dovecot.root / "mail" / imap.user).rglob("*"):
            if path.is_file() and path.stat().st_mode & 0o777 == 0:
                path.chmod(0o600)
    [(_, dead)] = await imap.bus.redis.xrange(keys.DEAD_IMAP)
    assert dead[b"uid"] == b"2" and b"fetch failed 2 times" in dead[b"error"]
    assert [e.meta["imap_uid"] for e in await stream(imap)] == ["1", "3"]
    assert await imap.bus.redis.hgetall(keys.imap_attempts_key(imap.account, "INBOX")) == {}
