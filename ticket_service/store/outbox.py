"""The store's side of ``core.outbox.Outbox``: what the sender and its relay read and write.

An attempt claims its row first (``attempts + 1`` and a lease, compare-and-set), so two
deliveries of one stream entry never send at once, and the trail shows every attempt
including one a crash cut short. Results are written only while the row is still queued.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.engine import Connection, Row

from core.blobs import BlobStore
from core.bus import Bus
from core.credentials import CredentialError
from core.ids import now_ms
from core.keys import TICKET_EVENTS
from core.outbound import OutboundFile, Outgoing, Sent
from core.outbox import DELIVERED, FAILED, QUEUED, SENT, AttemptInProgress, Due, Relayed
from ticket_service import events
from ticket_service.portal_links import PortalLinks, with_link
from ticket_service.store import admin
from ticket_service.store.db import Database
from ticket_service.store.tables import (
    attachments,
    channel_accounts,
    messages,
    outbox,
    tenants,
    tickets,
)

MESSAGE_SENT, MESSAGE_FAILED = "message.sent", "message.failed"


@dataclass(frozen=True, slots=True)
class _Ended:
    """A row whose send already ended, met again on the stream (with its tenant's slug)."""

    row: Row
    tenant: str


def _claim(conn: Connection, outbox_id: int, lease_ms: int, now: int):
    row = conn.execute(select(outbox).where(outbox.c.id == outbox_id)).first()
    if row is None or row.mode != "send":
        return None
    if row.status in (SENT, DELIVERED, FAILED):
        return _Ended(row, conn.execute(select(tenants.c.slug).where(tenants.c.id == row.tenant_id)).scalar_one())
    if row.status != QUEUED:
        return None
    if row.lease_until > now:
        raise AttemptInProgress(f"outbox {outbox_id} is held by another attempt")
    claimed = conn.execute(update(outbox).where(
        outbox.c.id == outbox_id, outbox.c.status == QUEUED, outbox.c.lease_until == row.lease_until,
    ).values(attempts=outbox.c.attempts + 1, lease_until=now + lease_ms)).rowcount
    if not claimed:
        raise AttemptInProgress(f"outbox {outbox_id} was claimed meanwhile")
    message = conn.execute(select(messages.c.subject, messages.c.text, messages.c.html)
                           .where(messages.c.id == row.message_id)).one()
    ticket = conn.execute(select(tickets.c.id, tickets.c.number, tickets.c.portal_generation, tickets.c.language)
                          .where(tickets.c.id == row.ticket_id)).one()
    files = conn.execute(select(attachments.c.filename, attachments.c.content_type, attachments.c.blob_key)
                         .where(attachments.c.message_id == row.message_id).order_by(attachments.c.id)).all()
    account = conn.execute(
        select(channel_accounts.c.id, channel_accounts.c.tenant_id, tenants.c.slug, channel_accounts.c.channel,
               channel_accounts.c.address, channel_accounts.c.settings, channel_accounts.c.secret_enc)
        .join(tenants, tenants.c.id == channel_accounts.c.tenant_id).where(channel_accounts.c.id == row.account_id)
    ).one()
    return row, message, ticket, files, admin.Account(*account)


class StoreOutbox:
    """``core.outbox.Outbox`` over the database; events go out on ``ticket.events`` after commit."""

    def __init__(self, db: Database, bus: Bus, blobs: BlobStore, secret_key: str,
                 links: PortalLinks | None = None) -> None:
        """With ``links``, every reply carries its ticket's status-page link (``with_link``)."""
        self.db, self.bus, self.blobs, self.secret_key, self.links = db, bus, blobs, secret_key, links

    async def begin_attempt(self, outbox_id: int, lease_ms: int) -> Outgoing | None:
        found = await self.db.run_write(_claim, outbox_id, lease_ms, now_ms())
        if isinstance(found, _Ended):
            # Its entry came back: the sender that ended it may have died between the commit
            # and the event. Events are at-least-once (receivers dedup on message_id), so say it again.
            await self._announce_ended(found)
            return None
        if found is None:
            return None
        row, message, ticket, files, account = found
        try:
            account = admin.open_secrets(account, self.secret_key)
        except CredentialError:
            pass  # sent with the secrets closed, the platform refuses it and says why
        data = [OutboundFile(f.filename, f.content_type, await self.blobs.get(f.blob_key)) for f in files]
        text, html = message.text, message.html
        if self.links is not None:
            # Valid from when the reply was written, so every retry sends the same link
            # (unless it was revoked meanwhile: then the current one).
            url = self.links.portal_link(row.tenant_id, ticket, issued_at=row.created_at / 1000)
            text, html = with_link(row.channel, text, html, url, ticket.language)
        return Outgoing(
            outbox_id=row.id, tenant_id=row.tenant_id, tenant=account.tenant_slug, ticket_id=row.ticket_id,
            ticket_number=ticket.number, message_id=row.message_id, channel=row.channel, account_id=account.id,
            account_address=account.address, account_settings=dict(account.settings), to=row.recipient,
            to_name=row.recipient_name, subject=message.subject, text=text, html=html,
            attachments=tuple(data), in_reply_to=row.in_reply_to, references=tuple(row.refs or ()),
            handle=row.handle, reply_to=row.reply_to, attempt=row.attempts + 1,
        )

    async def _finish(self, out: Outgoing, event: str | None, fields: dict, **values) -> bool:
        def write(conn: Connection) -> bool:
            return bool(conn.execute(update(outbox).where(outbox.c.id == out.outbox_id, outbox.c.status == QUEUED)
                                     .values(lease_until=0, **values)).rowcount)
        changed = await self.db.run_write(write)
        if changed and event:
            await self._announce(event, out.tenant, out.account_id, out.ticket_id, out.message_id, out.channel,
                                 out.attempt, fields)
        return changed

    async def _announce(self, event: str, tenant: str, account_id: int, ticket_id: int, message_id: int,
                        channel: str, attempts: int, fields: dict) -> None:
        env = events.event_envelope(event, tenant, str(account_id), "", ticket_id=ticket_id, message_id=message_id,
                                    channel=channel, attempts=attempts, **fields)
        await self.bus.publish(TICKET_EVENTS, env)

    async def _announce_ended(self, ended: _Ended) -> None:
        row = ended.row
        if row.status == FAILED:
            event, fields = MESSAGE_FAILED, {"code": row.last_error_code, "message": row.last_error[:1000]}
        else:
            event, fields = MESSAGE_SENT, {"status": row.status, "platform_id": row.platform_id or ""}
        await self._announce(event, ended.tenant, row.account_id, row.ticket_id, row.message_id, row.channel,
                             row.attempts, fields)

    async def record_sent(self, out: Outgoing, sent: Sent) -> None:
        status = DELIVERED if sent.status == DELIVERED else SENT
        await self._finish(out, MESSAGE_SENT, {"status": status, "platform_id": sent.platform_id},
                           status=status, sent_at=now_ms(), platform_id=sent.platform_id[:255],
                           last_error_code="", last_error="")

    async def record_retry(self, out: Outgoing, code: str, message: str, delay_ms: int) -> None:
        await self._finish(out, None, {}, next_attempt_at=now_ms() + delay_ms, relayed_at=None, relay_entry="",
                           last_error_code=code[:64], last_error=message[:4000])

    async def record_failed(self, out: Outgoing, code: str, message: str) -> None:
        await self._finish(out, MESSAGE_FAILED, {"code": code, "message": message[:1000]},
                           status=FAILED, last_error_code=code[:64], last_error=message[:4000])

    async def due(self, now: int, limit: int) -> list[Due]:
        async with self.db.read() as conn:
            rows = (await conn.execute(
                select(outbox.c.id, tenants.c.slug, outbox.c.channel, outbox.c.attempts)
                .join(tenants, tenants.c.id == outbox.c.tenant_id)
                .where(outbox.c.status == QUEUED, outbox.c.mode == "send", outbox.c.relayed_at.is_(None),
                       outbox.c.next_attempt_at <= now)
                .order_by(outbox.c.next_attempt_at, outbox.c.id).limit(limit)
            )).all()
        return [Due(r.id, r.slug, r.channel, r.attempts) for r in rows]

    async def mark_relayed(self, entries: list[Relayed]) -> None:
        # A sender can read the entry, begin an attempt and end it (a retry clears relayed_at
        # for the relay to put the row back when due) before the relay marks it here: marked
        # then, the row would wait for an entry that was already handled, and never be sent.
        # So a row is marked only while it has the attempts it had when found due.
        def write(conn: Connection, now: int) -> None:
            for e in entries:
                unchanged = [] if e.attempts is None else [outbox.c.attempts == e.attempts]
                conn.execute(update(outbox).where(outbox.c.id == e.outbox_id, outbox.c.status == QUEUED, *unchanged)
                             .values(relayed_at=now, relay_entry=e.entry_id))
        if entries:
            await self.db.run_write(write, now_ms())

    async def relayed_unsent(self, limit: int) -> list[Relayed]:
        async with self.db.read() as conn:
            rows = (await conn.execute(
                select(outbox.c.id, outbox.c.channel, outbox.c.relay_entry)
                .where(outbox.c.status == QUEUED, outbox.c.mode == "send", outbox.c.relayed_at.is_not(None))
                .order_by(outbox.c.id).limit(limit)
            )).all()
        return [Relayed(r.id, r.channel, r.relay_entry) for r in rows]

    async def unrelay(self, outbox_ids: list[int]) -> None:
        def write(conn: Connection) -> None:
            conn.execute(update(outbox).where(outbox.c.id.in_(outbox_ids), outbox.c.status == QUEUED)
                         .values(relayed_at=None, relay_entry=""))
        if outbox_ids:
            await self.db.run_write(write)
