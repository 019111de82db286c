"""The stream bus: publishing envelopes, consumer groups, dead letters and safe trimming."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterable

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from core import keys
from core.blobs import BlobStore
from core.envelope import FIELD, Envelope
from core.ids import now_ms

BLOB_META = "blob"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _parse_id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class Bus:
    """Producer side of the streams plus the group bookkeeping every stage shares."""

    def __init__(self, redis: aioredis.Redis, blobs: BlobStore, blob_threshold: int) -> None:
        self.redis = redis
        self.blobs = blobs
        self.blob_threshold = blob_threshold
        self._queued: list[tuple[str, bytes, asyncio.Future]] = []
        self._sender: asyncio.Task | None = None

    async def _wire(self, env: Envelope) -> bytes:
        # Claim check: large payloads live in the blob store, the entry carries the key.
        if len(env.payload) > self.blob_threshold:
            key = await self.blobs.put(env.payload)
            env = dataclasses.replace(env, payload=b"", meta={**env.meta, BLOB_META: key})
        return env.pack()

    async def wire(self, env: Envelope) -> bytes:
        """The entry value for ``env`` (claim-checked if large), for a caller's own XADD script."""
        return await self._wire(env)

    async def publish(self, stream: str, env: Envelope) -> str:
        """XADD one envelope; returns once Redis has it (the point an ingress may say yes)."""
        [entry_id] = await self.publish_many([(stream, env)])
        return entry_id

    async def publish_many(self, items: Iterable[tuple[str, Envelope]]) -> list[str]:
        """XADD each; returns their entry ids once Redis has them all.

        Concurrent callers share round trips: XADDs queued while one pipeline is in flight
        go out together in the next, so a busy ingress makes one write per batch of
        requests instead of one per request, and an idle one waits for nobody.
        """
        loop = asyncio.get_running_loop()
        waiting = []
        for stream, env in items:
            wire = await self._wire(env)  # before looking up the queue: the sender swaps it meanwhile
            future = loop.create_future()
            self._queued.append((stream, wire, future))
            waiting.append(future)
        if self._sender is None or self._sender.done():
            self._sender = loop.create_task(self._send_queued())
        return [_text(i) for i in await asyncio.gather(*waiting)]

    async def _send_queued(self) -> None:
        while self._queued:
            batch, self._queued = self._queued, []
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for stream, wire, _ in batch:
                        pipe.xadd(stream, {FIELD: wire})
                    replies = await pipe.execute(raise_on_error=False)
            except BaseException as exc:
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for (_, _, future), reply in zip(batch, replies, strict=True):
                if future.done():
                    continue
                if isinstance(reply, Exception):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)

    async def materialize(self, env: Envelope) -> Envelope:
        """Fetch a claim-checked payload back into the envelope."""
        key = env.meta.get(BLOB_META)
        if key and not env.payload:
            env.payload = await self.blobs.get(key)
        return env

    async def ensure_group(self, stream: str, group: str) -> None:
        try:
            await self.redis.xgroup_create(stream, group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def dead_letter(
        self, stream: str, group: str, entry_id: str, raw: bytes | None, error: str, deliveries: int
    ) -> None:
        """Move an entry to ``dead.<stream>`` with its reason and ack it, atomically."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(
                keys.dead_stream(stream),
                {
                    FIELD: raw or b"",
                    b"error": error[:4000],
                    b"source": stream,
                    b"entry_id": entry_id,
                    b"group": group,
                    b"deliveries": str(deliveries),
                    b"failed_at": str(now_ms()),
                },
            )
            pipe.xack(stream, group, entry_id)
            pipe.hdel(keys.last_error_key(stream, group), entry_id)
            await pipe.execute()

    async def trim_boundary(self, stream: str) -> str | None:
        """The lowest entry id some group still needs, or None when no group reads the stream."""
        try:
            groups = await self.redis.xinfo_groups(stream)
        except ResponseError:
            return None
        if not groups:
            return None
        bounds: list[tuple[int, int]] = []
        for g in groups:
            ms, seq = _parse_id(_text(g["last-delivered-id"]))
            bounds.append((ms, seq + 1))  # everything after last-delivered is undelivered
            if g["pending"]:
                summary = await self.redis.xpending(stream, g["name"])
                bounds.append(_parse_id(_text(summary["min"])))
        ms, seq = min(bounds)
        return f"{ms}-{seq}"

    async def safe_trim(self, stream: str, older_than_ms: int | None = None) -> int:
        """Trim entries every group has acked; never one still pending or undelivered."""
        boundary = await self.trim_boundary(stream)
        if boundary is None:
            return 0
        if older_than_ms is not None:
            ms, seq = min(_parse_id(boundary), (now_ms() - older_than_ms, 0))
            boundary = f"{ms}-{seq}"
        return int(await self.redis.xtrim(stream, minid=boundary, approximate=False))
