"""One mailbox folder: fetch what is new since the checkpoint, XADD it, move the checkpoint.

The checkpoint (UIDVALIDITY + last UID, RFC 3501 §2.3.1.1) lives in Redis beside the
stream, and one script writes the envelope and the checkpoint together, and only while
this poller still holds the mailbox's lease. A poller killed between FETCH and that
script fetches the message again on restart; a poller that lost its lease writes nothing.
"""

from __future__ import annotations

import asyncio
import random

import structlog
from redis.exceptions import RedisError

from connectors.email.imap.client import FetchFailure, Folder, ImapFailure, ImapSession
from connectors.email.tls import client_context
from core import keys, metrics
from core.accounts import ImapMailbox
from core.bus import Bus
from core.credentials import CredentialError, unseal
from core.envelope import FIELD, Envelope
from core.ids import now_ms
from core.lease import Lease
from core.settings import Settings, SettingsError

log = structlog.get_logger()
CHANNEL = "email"
STREAM = keys.ingest_stream(CHANNEL)

# KEYS: lease, checkpoint, attempts, target stream. ARGV: owner, uidvalidity, uid, then the
# XADD field/value pairs (none: only move the checkpoint).
_COMMIT = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return false end
local id = ''
if #ARGV > 3 then id = redis.call('xadd', KEYS[4], '*', unpack(ARGV, 4)) end
redis.call('hset', KEYS[2], 'uidvalidity', ARGV[2], 'uid', ARGV[3])
redis.call('hdel', KEYS[3], ARGV[3])
return id
"""


class LeaseLost(Exception):
    """Another poller holds this mailbox now; stop touching it."""


class MailboxPoller:
    """Keeps one mailbox folder drained into ``ingest.email`` while its lease is held."""

    def __init__(self, bus: Bus, settings: Settings, mailbox: ImapMailbox, lease: Lease) -> None:
        self.bus, self.settings, self.mailbox, self.lease = bus, settings, mailbox, lease
        self.redis = bus.redis
        self._commit = self.redis.register_script(_COMMIT)
        m = mailbox
        self.checkpoint_key = keys.imap_checkpoint_key(m.account_id, m.folder)
        self.attempts_key = keys.imap_attempts_key(m.account_id, m.folder)
        self.log = log.bind(channel=CHANNEL, tenant=m.tenant_slug, account=m.account_id, folder=m.folder)
        self.last_poll = metrics.IMAP_LAST_POLL.labels(m.name)

    async def run(self) -> None:
        """Connect, drain, wait for more (IDLE or poll); on any failure reconnect with backoff."""
        backoff = 0.5
        while True:
            session = None
            try:
                session = self.session()
                password = unseal(self.settings.secret_key, self.mailbox.secret_enc)
                folder = await session.open(self.mailbox.user, password, self.mailbox.folder)
                self.log.info("imap.connected", uidvalidity=folder.uidvalidity, idle=session.supports_idle,
                              tls=session.tls_version or "none")
                if self.mailbox.start == "new":
                    await self.skip_existing(folder)
                while True:
                    await self.drain(session, folder.uidvalidity)
                    backoff = 0.5
                    await self._wait(session)
            except (ImapFailure, CredentialError, SettingsError, RedisError, OSError) as exc:
                self.log.warning("imap.reconnect", error=str(exc), backoff_s=round(backoff, 2))
            finally:
                if session is not None:
                    await session.close()
            await asyncio.sleep(backoff * random.uniform(0.8, 1.2))
            backoff = min(backoff * 2, self.settings.imap_backoff_max_s)

    def session(self) -> ImapSession:
        """A connection to this mailbox's server, TLS as its ``security`` says."""
        m = self.mailbox
        tls = None if m.security == "none" else client_context(self.settings.imap_tls_ca, verify=m.tls_verify)
        return ImapSession(m.host, m.port, security=m.security, tls=tls, timeout=self.settings.imap_timeout_s)

    async def _wait(self, session: ImapSession) -> None:
        if session.supports_idle:
            await session.idle(self.settings.imap_idle_s)
        else:
            await asyncio.sleep(self.settings.imap_poll_interval_s)
            await session.noop()

    async def checkpoint(self, uidvalidity: int) -> int:
        """The last UID on the stream, or 0 when there is none or the folder was rebuilt."""
        saved = await self.redis.hgetall(self.checkpoint_key)
        if not saved:
            return 0
        if int(saved[b"uidvalidity"]) != uidvalidity:
            # RFC 3501 §2.3.1.1: old UIDs mean nothing now. Fetch the folder again; the store
            # dedups by Message-ID, so what was already taken in opens no second ticket.
            self.log.warning("imap.uidvalidity_changed", old=int(saved[b"uidvalidity"]), new=uidvalidity)
            await self._move_checkpoint(uidvalidity, 0, [])
            return 0
        return int(saved[b"uid"])

    async def skip_existing(self, folder: Folder) -> None:
        """First contact with start=new: what is already in the folder is history, not tickets."""
        if await self.redis.exists(self.checkpoint_key) or folder.uidnext is None:
            return
        await self._move_checkpoint(folder.uidvalidity, folder.uidnext - 1, [])
        self.log.info("imap.skipped_existing", up_to_uid=folder.uidnext - 1)

    async def drain(self, session: ImapSession, uidvalidity: int) -> int:
        """Publish every message past the checkpoint; returns how many were published."""
        published = 0
        while True:
            last = await self.checkpoint(uidvalidity)
            uids = (await session.uids_after(last))[: self.settings.imap_batch]
            self.last_poll.set(now_ms() / 1000)
            if not uids:
                return published
            sizes = await session.sizes(uids)
            for uid in uids:
                if await self._take(session, uidvalidity, uid, sizes.get(uid)):
                    published += 1

    async def _take(self, session: ImapSession, uidvalidity: int, uid: int, size: int | None) -> bool:
        if size is None:  # expunged since the search: nothing to fetch, nothing lost
            await self._move_checkpoint(uidvalidity, uid, [])
            return False
        if size > self.settings.max_message_size:
            await self.quarantine(uidvalidity, uid, f"message of {size} bytes exceeds max_message_size")
            return False
        if session.lost.is_set():  # not this message's fault: reconnect without counting it
            raise ImapFailure("connection lost")
        try:
            raw = await session.fetch(uid)
        except (FetchFailure, ImapFailure) as exc:
            attempts = await self.redis.hincrby(self.attempts_key, str(uid), 1)
            if attempts < self.settings.imap_max_attempts:
                raise ImapFailure(f"fetch {uid} (attempt {attempts}): {exc}") from exc
            await self.quarantine(uidvalidity, uid, f"fetch failed {attempts} times: {exc}")
            return False
        env = Envelope(tenant=self.mailbox.tenant_slug, channel=CHANNEL, account=str(self.mailbox.account_id),
                       payload=raw, content_type="message/rfc822", meta=self._meta(uidvalidity, uid))
        await self._move_checkpoint(uidvalidity, uid, [FIELD, await self.bus.wire(env)], STREAM)
        metrics.INGRESS.labels(CHANNEL, "accepted", "").inc()
        self.log.info("imap.accepted", envelope_id=env.id, uid=uid, size=len(raw))
        await self._after(session, uid)
        return True

    async def quarantine(self, uidvalidity: int, uid: int, error: str) -> None:
        """Park a message that cannot be taken in ``dead.imap`` with its UID, and move past it."""
        m = self.mailbox
        fields = [FIELD, b"", "error", error[:4000], "source", "imap", "account", str(m.account_id),
                  "tenant", m.tenant_slug, "folder", m.folder, "uidvalidity", str(uidvalidity),
                  "uid", str(uid), "failed_at", str(now_ms())]
        await self._move_checkpoint(uidvalidity, uid, fields, keys.DEAD_IMAP)
        metrics.INGRESS.labels(CHANNEL, "rejected", "quarantined").inc()
        self.log.error("imap.quarantined", uid=uid, error=error)

    async def _move_checkpoint(self, uidvalidity: int, uid: int, fields: list, stream: str = "") -> None:
        keys_ = [self.lease.key, self.checkpoint_key, self.attempts_key, stream or STREAM]
        done = await self._commit(keys=keys_, args=[self.lease.owner, uidvalidity, uid, *fields])
        if done is None:
            raise LeaseLost(self.lease.key)

    async def _after(self, session: ImapSession, uid: int) -> None:
        # The message is on the stream and past the checkpoint: if this fails it stays
        # unmarked (or unmoved), but it is never fetched twice.
        if self.mailbox.after == "seen":
            await session.mark_seen(uid)
        elif self.mailbox.after == "move":
            await session.move(uid, self.mailbox.move_to)

    def _meta(self, uidvalidity: int, uid: int) -> dict[str, str]:
        m = self.mailbox
        return {"rcpt_to": m.address, "imap_host": m.host, "imap_folder": m.folder,
                "imap_uidvalidity": str(uidvalidity), "imap_uid": str(uid)}
