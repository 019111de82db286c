"""The outbox relay: puts due outbox rows on ``outbound.<channel>`` for the sender.

One relay runs at a time (a Redis lease among the sender replicas). A row is marked with
its entry id once the entry is on the stream; a crash in between only makes a duplicate
entry, which the sender recognises (the row is claimed per attempt). When it takes the
lease, a relay puts back the rows marked as relayed whose entries are gone (Redis lost
them) and that have no result: nothing queued is left without a way to be sent.
"""

from __future__ import annotations

import asyncio

import structlog

from connectors.sender import entry
from core import keys
from core.bus import Bus
from core.ids import new_id, now_ms
from core.lease import Lease
from core.outbox import Outbox, Relayed
from core.settings import Settings

log = structlog.get_logger()
BATCH = 500


class Relay:
    def __init__(self, bus: Bus, settings: Settings, outbox: Outbox) -> None:
        self.bus, self.settings, self.outbox = bus, settings, outbox
        interval = settings.outbox_relay_interval_ms
        self.lease = Lease(bus.redis, keys.OUTBOX_RELAY_KEY, f"relay-{new_id()}", max(10 * interval, 3000))
        self.relayed = 0

    async def recover(self) -> int:
        """Relay again the rows whose stream entries are gone; returns how many."""
        lost: list[int] = []
        for row in await self.outbox.relayed_unsent(10_000):
            stream = keys.outbound_stream(row.channel)
            if not row.entry_id or not await self.bus.redis.xrange(stream, row.entry_id, row.entry_id):
                lost.append(row.outbox_id)
        await self.outbox.unrelay(lost)
        if lost:
            log.warning("outbox.relay_recovered", rows=len(lost))
        return len(lost)

    async def relay_once(self) -> int:
        """Put every due row on its stream (in batches); returns how many."""
        total = 0
        while True:
            due = await self.outbox.due(now_ms(), BATCH)
            if not due:
                return total
            ids = await self.bus.publish_many(
                [(keys.outbound_stream(d.channel), entry(d.outbox_id, d.tenant, d.channel)) for d in due])
            await self.outbox.mark_relayed([Relayed(d.outbox_id, d.channel, i, d.attempts)
                                            for d, i in zip(due, ids, strict=True)])
            total += len(due)
            self.relayed += len(due)
            if len(due) < BATCH:
                return total

    async def run(self, stop: asyncio.Event) -> None:
        """Relay while holding the lease, until ``stop``."""
        held = False
        interval = self.settings.outbox_relay_interval_ms / 1000
        while not stop.is_set():
            try:
                held = await (self.lease.renew() if held else self.lease.acquire())
                if held:
                    if not self.relayed:
                        await self.recover()
                    await self.relay_once()
            except Exception as exc:  # the store or Redis is down: try again next round
                log.warning("outbox.relay_failed", error=f"{type(exc).__name__}: {exc}")
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except TimeoutError:
                pass
        if held:
            await self.lease.release()
