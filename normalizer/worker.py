"""The normalizer stage: every ``ingest.<channel>`` stream -> tickets and ``ticket.events``."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import structlog
from sqlalchemy.exc import DBAPIError

from connectors.inbound import Inbound
from connectors.registry import CHANNELS
from core import keys, metrics
from core.accounts import Account, Accounts
from core.batch import Batch
from core.blobs import BlobStore
from core.bus import Bus
from core.channel import Channel
from core.envelope import Envelope
from core.errors import PermanentError
from core.ids import now_ms
from core.settings import Settings
from core.worker import Worker, bound
from normalizer.batch_writer import store_jobs
from normalizer.ingest import Job, Kind, Outcome, Windows, ingest
from normalizer.order import KeyGate, batch_keys
from ticket_service import events
from ticket_service.store.db import Database, is_conflict
from ticket_service.store.db import is_outage as db_is_outage
from ticket_service.store.directory import AccountDirectory

log = structlog.get_logger()

_EVENT_FOR = {
    Kind.CREATED: events.TICKET_CREATED,
    Kind.FOLLOWUP: events.TICKET_CREATED,
    Kind.REOPENED: events.TICKET_REOPENED,
    Kind.APPENDED: events.MESSAGE_ADDED,
    # Redelivery after a crash between commit and publish: publish again (router is idempotent).
    Kind.REDELIVERED: events.MESSAGE_ADDED,
}
# A message that now lives on a ticket: counted in the ingress-to-ticket latency.
_STORED = frozenset({Kind.CREATED, Kind.FOLLOWUP, Kind.REOPENED, Kind.APPENDED})
_AUTO_KINDS = frozenset({Kind.AUTO, Kind.DROPPED})  # counted by ``_count_auto``, with ``auto`` set


_WHOLE_ATTEMPTS = 3
_UNSEEN = object()


def _logs_info() -> bool:
    """Whether ``log.info`` writes anything (the level ``core.logging.configure`` set)."""
    enabled = getattr(log, "is_enabled_for", None)
    return enabled is None or enabled(logging.INFO)


class UnknownAccount(PermanentError):
    pass


class Normalizer(Worker):
    role = "normalizer"
    group = keys.GROUP_NORMALIZER

    def is_outage(self, exc: BaseException) -> bool:
        return isinstance(exc, self.outage_errors) or db_is_outage(exc)

    def __init__(self, bus: Bus, settings: Settings, db: Database, blobs: BlobStore, consumer: str | None = None,
                 channels: Mapping[str, Channel] = CHANNELS, accounts: Accounts | None = None):
        super().__init__(bus, settings, [keys.ingest_stream(c) for c in channels], consumer)
        self.channels = channels
        self.db = db
        self.blobs = blobs
        # Parsing needs no channel secrets: accounts are taken with theirs still sealed.
        self.accounts: Accounts = accounts or AccountDirectory(db, settings.account_cache_s)
        self.gate = KeyGate()

    @property
    def concurrency(self) -> int:
        return max(1, self.settings.normalizer_concurrency)

    @property
    def windows(self) -> Windows:
        return Windows(self.settings.reopen_window_s * 1000, self.settings.session_window_s * 1000,
                       self.settings.secret_key)

    async def handle(self, envelope: Envelope) -> None:
        [error] = await self.handle_batch([envelope])
        if error is not None:
            raise error

    async def handle_batch(self, envelopes: list[Envelope]) -> list[BaseException | None]:
        """Parse each envelope, store the batch in one transaction, publish its events.

        When the batch transaction fails (a bad row, a unique-key race with another
        normalizer), each envelope is stored in its own, so only the bad one fails.
        """
        arrival = self.gate.arrive()  # stored in the order read, among batches sharing a conversation
        try:
            batch = Batch(len(envelopes), self.is_outage, self.role)
            accounts: dict[str, Account | None] = {}  # a batch's envelopes are mostly one account's
            jobs = await batch.run(dict(enumerate(envelopes)), single=lambda env: self._job(env, accounts))
            jobs = await self._store_files(batch, jobs)
            async with self.gate.hold(batch_keys(jobs.values()), arrival):
                return await self._store(envelopes, batch, jobs)
        finally:
            arrival.leave()

    async def _store(self, envelopes: list[Envelope], batch: Batch, jobs: dict[int, Job]) -> list[BaseException | None]:
        windows = self.windows
        stored = await batch.run(jobs, single=lambda job: ingest(self.db, job, windows),
                                 whole=lambda each: self._store_whole(each, windows))
        published = []
        # Asked once a batch: a filtered-out ``log.info`` still cost about 1.7 µs a message.
        info = _logs_info()
        now = now_ms()  # the batch's messages were all stored by the one commit
        for n, outcomes in stored.items():
            env, tenant_id = envelopes[n], jobs[n].account.tenant_id
            for outcome in outcomes:
                if info:
                    # The envelope's fields as ``bound`` gives them, without binding per message.
                    log.info(f"message.{outcome.kind}", ticket_id=outcome.ticket_id, message_id=outcome.message_id,
                             rule=outcome.rule, auto=outcome.auto or None, trace_id=env.trace_id, tenant=env.tenant,
                             channel=env.channel, envelope_id=env.id)
                if outcome.auto or outcome.kind in _AUTO_KINDS:
                    self._count_auto(env.channel, outcome)
                if outcome.kind in _STORED:
                    metrics.INGRESS_TO_TICKET.observe(max(now - env.received_at, 0) / 1000)
                if outcome.kind in _EVENT_FOR and outcome.ticket_id is not None:
                    published.append((keys.TICKET_EVENTS, self._event(env, tenant_id, outcome)))
                if outcome.reopened_from:
                    published.append((keys.TICKET_EVENTS, events.event_envelope(
                        events.TICKET_STATUS_CHANGED, env.tenant, env.account, env.trace_id,
                        tenant_id=tenant_id, ticket_id=outcome.ticket_id, message_id=outcome.message_id,
                        **{"from": outcome.reopened_from, "to": "open"})))
        if published:
            try:
                await self.bus.publish_many(published)
            except Exception as exc:
                # Stored but not announced: left pending, the redelivery announces them again.
                batch.fail(stored, exc)
        return batch.results

    async def _store_whole(self, jobs: list[Job], windows: Windows) -> list[list[Outcome]]:
        """The batch in one transaction; run again when it raced another normalizer.

        A race (a key the other replica's batch took first, a deadlock PostgreSQL broke) is
        over once that batch committed, so the same batch run again reads its rows and goes
        through. Split into single messages only for anything else, or a third race: one
        transaction per message is what a batch is there to avoid.
        """
        for attempt in range(1, _WHOLE_ATTEMPTS + 1):
            try:
                return await self.db.run_write(store_jobs, jobs, windows)
            except DBAPIError as exc:
                if attempt == _WHOLE_ATTEMPTS or not is_conflict(exc):
                    raise
                log.info("normalizer.batch_race_retry", attempt=attempt, error=type(exc.orig).__name__,
                         size=len(jobs))
        raise AssertionError("unreachable")

    async def _job(self, envelope: Envelope, accounts: dict[str, Account | None]) -> Job:
        """``accounts``: the batch's accounts looked up so far, by the envelope's text."""
        account = accounts.get(envelope.account, _UNSEEN)
        if account is _UNSEEN:
            try:
                account = await self.accounts.by_id(int(envelope.account), secrets=False)
            except ValueError:
                account = None
            accounts[envelope.account] = account
        if account is None or account.channel != envelope.channel:
            raise UnknownAccount(f"no {envelope.channel} account {envelope.account!r}")
        channel = self.channels.get(envelope.channel)
        if channel is None:
            raise PermanentError(f"no parser for channel {envelope.channel!r}")
        with bound(envelope):
            messages = [(inbound, self._attachments(inbound)) for inbound in channel.parse(envelope)]
            return Job(account, envelope, messages, channel)

    async def _store_files(self, batch: Batch, jobs: dict[int, Job]) -> dict[int, Job]:
        """The batch's attachments into the blob store, before any row names them.

        Content-addressed: a retry writes nothing new; uploads are in the store already.
        """
        # Under the keys ``_attachments`` gave their rows: each file is hashed once.
        files = [(row["blob_key"], a.data) for job in jobs.values() for inbound, rows in job.messages
                 for a, row in zip(inbound.attachments, rows, strict=True) if not a.blob_key]
        try:
            await self.blobs.put_many_keyed_unsafe(files)
        except Exception as exc:
            batch.fail(jobs, exc)
            return {}
        return jobs

    def _attachments(self, inbound: Inbound) -> list[dict]:
        rows = []
        for a in inbound.attachments:
            key = a.blob_key or self.blobs.key_of(a.data)
            rows.append(dict(
                filename=a.filename[:255], content_type=a.content_type[:255], size=a.size,
                sha256=key.rsplit("/", 1)[1], blob_key=key, content_id=a.content_id, inline=a.inline,
            ))
        return rows

    @staticmethod
    def _count_auto(channel: str, outcome: Outcome) -> None:
        if outcome.auto:
            metrics.AUTO_MAIL.labels(channel, "ticket").inc()
        elif outcome.kind in _AUTO_KINDS:
            metrics.AUTO_MAIL.labels(channel, "dropped" if outcome.kind == Kind.DROPPED else "kept").inc()

    @staticmethod
    def _event(env: Envelope, tenant_id: int, outcome: Outcome) -> Envelope:
        # ``auto``: opened by bulk mail; the router records it as skipped instead of routing it.
        extra = {"auto": outcome.auto} if outcome.auto else {}
        return events.event_envelope(
            _EVENT_FOR[outcome.kind], env.tenant, env.account, env.trace_id,
            tenant_id=tenant_id, ticket_id=outcome.ticket_id, number=outcome.number,
            message_id=outcome.message_id, customer_id=outcome.customer_id, priority=outcome.priority,
            channel=env.channel, received_at=env.received_at, **extra,
        )
