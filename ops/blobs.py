"""Orphan blobs: stored bytes nothing refers to any more, removed after a grace period.

Blobs are content-addressed and written before anything refers to them (an SDK upload, a
claim-checked payload, an attachment the normalizer stores), so one that nothing refers to
may be on its way to being referred to. A blob is removed only when it was last stored
more than ``grace_s`` ago (a put of the same bytes touches it) and none of these names it:

* an attachment row (any tenant);
* a live SDK upload key (``sb:sdk:upload:*``, 24 h TTL);
* any entry of any stream: ingest, outbound and dead letters, which ``ops dead replay``
  may put back (the raw entry is searched for blob keys, so nothing is missed).

Runs every ``blob_collect_interval_s`` in one normalizer replica (a Redis key held for the
interval picks it) and on demand with ``switchboard ops collect-blobs``.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field

import redis.asyncio as aioredis
import structlog

from core import keys
from core.blobs import BlobStore
from ticket_service.store.attachments import blob_keys_in_use
from ticket_service.store.db import Database

log = structlog.get_logger()
_REF = re.compile(rb"sha256/[0-9a-f]{2}/[0-9a-f]{64}")


@dataclass(slots=True)
class Collection:
    """One run: how many blobs were old enough to look at, which went, bytes freed."""

    old: int = 0
    removed: list[str] = field(default_factory=list)
    freed: int = 0
    dry_run: bool = False

    def as_dict(self) -> dict:
        return {"old": self.old, "removed": len(self.removed), "freed_bytes": self.freed,
                "dry_run": self.dry_run, "keys": self.removed}


async def redis_references(redis: aioredis.Redis) -> set[str]:
    """Blob keys named by SDK upload keys and by any stream entry."""
    found: set[bytes] = set()
    async for key in redis.scan_iter(match=keys.SDK_UPLOAD_PATTERN, count=1000):
        found.update(_REF.findall(await redis.get(key) or b""))
    async for stream in redis.scan_iter(_type="stream", count=1000):
        start = "-"
        while entries := await redis.xrange(stream, min=start, count=1000):
            for _, fields in entries:
                for value in fields.values():
                    found.update(_REF.findall(value))
            start = "(" + entries[-1][0].decode()
    return {ref.decode() for ref in found}


async def collect(blobs: BlobStore, db: Database, redis: aioredis.Redis, grace_s: float,
                  dry_run: bool = False) -> Collection:
    """Remove the blobs older than ``grace_s`` that nothing refers to."""
    cutoff = time.time() - grace_s
    # Candidates first, references second: a reference made meanwhile is found, and its
    # blob was touched by the put that preceded it.
    old = await asyncio.to_thread(lambda: dict(blobs.older_than_unsafe_blocking(cutoff)))
    run = Collection(old=len(old), dry_run=dry_run)
    if not old:
        return run
    used = await redis_references(redis)
    async with db.read() as conn:
        used |= await blob_keys_in_use(conn, [k for k in old if k not in used])
    for key in sorted(set(old) - used):
        freed = old[key] if dry_run else await asyncio.to_thread(blobs.remove_if_older_unsafe_blocking,
                                                                     key, cutoff)
        if freed or dry_run:
            run.removed.append(key)
            run.freed += freed
    log.info("blobs.collected", old=run.old, removed=len(run.removed), freed_bytes=run.freed, dry_run=dry_run)
    return run


async def collect_periodically(blobs: BlobStore, db: Database, redis: aioredis.Redis, grace_s: float,
                               interval_s: float, owner: str, stop: asyncio.Event) -> None:
    """Every ``interval_s``: collect, if this replica is the one that took the interval's key."""
    while interval_s > 0 and not stop.is_set():
        try:
            if await redis.set(keys.BLOB_COLLECT_KEY, owner, nx=True, ex=int(interval_s)):
                await collect(blobs, db, redis, grace_s)
        except Exception:
            log.error("blobs.collect_failed", exc_info=True)
        try:
            await asyncio.wait_for(stop.wait(), timeout=min(interval_s, 600))
        except TimeoutError:
            pass
