"""Batches of one normalizer that touch the same conversation are stored one after the other.

A normalizer has ``normalizer_concurrency`` batches in hand: one is parsed while another
waits on the database. Two batches holding messages of one conversation (the same sender
identity, conversation or session key, or dedup key) must not be stored at once: the later
one would not see the earlier one's new ticket, and on PostgreSQL would open a second one
or fail on the key the first took. So each batch holds its keys from before its transaction
until its events are published, and a batch that shares a key waits for the holder. Other
replicas are still raced as before (unique keys, retried); this only keeps one process from
racing itself.
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


class KeyGate:
    def __init__(self) -> None:
        self._held: dict[Hashable, asyncio.Event] = {}

    @asynccontextmanager
    async def hold(self, keys: set[Hashable]) -> AsyncIterator[None]:
        """Wait until no batch in hand holds any of ``keys``, then hold them all."""
        # Set operations: a batch holds a few hundred keys, looked up here in C.
        while busy := self._held.keys() & keys:
            await self._held[next(iter(busy))].wait()
        done = asyncio.Event()
        self._held.update(dict.fromkeys(keys, done))
        try:
            yield
        finally:
            for key in keys:
                if self._held.get(key) is done:
                    del self._held[key]
            done.set()
