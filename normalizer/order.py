"""Batches of one normalizer that touch the same conversation are stored one after the other.

A normalizer has ``normalizer_concurrency`` batches in hand: one is parsed while another
waits on the database. Two batches holding messages of one conversation (the same sender
identity, conversation or session key, or dedup key) must not be stored at once: the later
one would not see the earlier one's new ticket, and on PostgreSQL would open a second one
or fail on the key the first took. So each batch holds its keys from before its transaction
until its events are published, and a batch that shares a key waits for the holder. Other
replicas are still raced as before (unique keys, retried); this only keeps one process from
racing itself.

And in the order the batches came: a batch takes its place on arrival (``KeyGate.arrive``)
and claims its keys only after the batch before it has claimed its own. A batch that
arrived first but waited longer before the gate (its attachments being written, its
account looked up) still goes first: a customer's two messages read in two batches are
stored in the order they were sent, whatever each had to do before its transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Hashable, Iterable
from contextlib import asynccontextmanager

from normalizer.ingest import Job, store_key


def batch_keys(jobs: Iterable[Job]) -> set[Hashable]:
    """What the batch's messages may read or write by: identities, conversation keys, dedup keys."""
    keys: set[Hashable] = set()
    for job in jobs:
        tenant, account = job.account.tenant_id, job.account.id
        for inbound, _ in job.messages:
            keys.add(("dedup", tenant, job.env.channel, store_key(inbound.dedup_key)))
            keys.add(("who", tenant, inbound.sender.value))
            if inbound.also:
                keys.update(("who", tenant, i.value[:320]) for i in inbound.also if i.value)
            thread_keys, session = job.conversation_keys(inbound)
            for key in thread_keys:
                keys.add(("thread", tenant, account, key))
            if session:
                keys.add(("thread", tenant, account, session))
    return keys


class Arrival:
    """A batch's place in the gate's line: ``claimed`` is done once it has claimed its keys
    (or left without), which is what the batch after it waits for."""

    __slots__ = ("before", "claimed")

    def __init__(self, before: asyncio.Future | None, claimed: asyncio.Future) -> None:
        self.before, self.claimed = before, claimed

    def leave(self) -> None:
        """Let the next batch claim (idempotent): at once if the one before has claimed, else
        as soon as it does, so a batch that fails or is cancelled early keeps the order."""
        if self.claimed.done():
            return
        if self.before is None or self.before.done():
            self.claimed.set_result(None)
        else:
            self.before.add_done_callback(lambda _: self.claimed.done() or self.claimed.set_result(None))


class KeyGate:
    def __init__(self) -> None:
        self._held: dict[Hashable, asyncio.Event] = {}  # key -> the last batch to claim it, set when it is done
        self._last: asyncio.Future | None = None  # ``claimed`` of the latest batch to arrive

    def arrive(self) -> Arrival:
        """A batch's place in line, taken when it is read (before anything it awaits); the
        batch calls ``leave()`` when it ends, however it ends (in a ``finally``)."""
        arrival = Arrival(self._last, asyncio.get_running_loop().create_future())
        self._last = arrival.claimed
        return arrival

    @asynccontextmanager
    async def hold(self, keys: set[Hashable], arrival: Arrival | None = None) -> AsyncIterator[None]:
        """Claim ``keys`` after the batches that arrived before (``arrival``), then wait until
        every batch holding or waiting for one of them is done, and hold them all."""
        if arrival is not None and arrival.before is not None:
            await asyncio.shield(arrival.before)
        # Set operations: a batch holds a few hundred keys, looked up here in C.
        ahead = {self._held[key] for key in self._held.keys() & keys}
        done = asyncio.Event()
        self._held.update(dict.fromkeys(keys, done))
        if arrival is not None:
            arrival.leave()
        try:
            for event in ahead:
                await event.wait()
            yield
        finally:
            for key in keys:
                if self._held.get(key) is done:
                    del self._held[key]
            done.set()
