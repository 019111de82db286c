"""The one consumer loop every stage runs; a stage implements only ``handle``.

Reads batches with XREADGROUP, acks after ``handle`` returned (its work committed),
retries failures by leaving them pending until XAUTOCLAIM takes them back after the
visibility timeout, and dead-letters an entry once it was delivered ``max_deliveries``
times, or at once when it is permanently bad. SIGTERM stops reading and drains the batch
in hand. Each worker keeps a heartbeat hash with its counters.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections import Counter

import structlog
from redis.exceptions import ResponseError

from core import keys, metrics
from core import logging as sblogging
from core.batch import Batch, NotAttempted, Result
from core.bus import BLOB_META, Bus, _text
from core.envelope import FIELD, Envelope
from core.errors import EnvelopeError, PermanentError
from core.ids import new_id, now_ms
from core.redis import UNAVAILABLE, is_cluster
from core.settings import Settings

log = structlog.get_logger()

_OUTAGE_MARK = b"outage: "


class bound:  # noqa: N801 - used as a function: ``with bound(env):``
    """Log lines inside carry the envelope's trace, tenant, channel and id.

    Entered for every envelope a stage handles, so it only sets one context variable
    (``core.logging.ENVELOPE``) and resets it on the way out; the fields are added when a
    line is actually logged (``core.logging.envelope_fields``)."""

    __slots__ = ("env", "token")

    def __init__(self, env: Envelope) -> None:
        self.env = env

    def __enter__(self) -> None:
        self.token = sblogging.ENVELOPE.set(self.env)

    def __exit__(self, *_exc: object) -> None:
        sblogging.ENVELOPE.reset(self.token)


def consumer_name(role: str) -> str:
    """Unique per process, readable in XINFO CONSUMERS."""
    return f"{role}-{socket.gethostname()}-{os.getpid()}-{new_id()[-4:].lower()}"


class Worker:
    """Base class for a stage consuming one or more streams as one consumer group."""

    role = "worker"
    group = ""
    # Errors that mean a dependency is down, not that the entry is bad: the batch stops, the
    # loop backs off, and such failures never count an entry towards dead-lettering.
    outage_errors: tuple[type[BaseException], ...] = (OSError,)

    def __init__(self, bus: Bus, settings: Settings, streams: list[str], consumer: str | None = None) -> None:
        self.bus = bus
        self.redis = bus.redis
        self.settings = settings
        self.streams = streams
        self.consumer = consumer or consumer_name(self.role)
        self.counters: Counter[str] = Counter()
        self.last_tick = 0.0
        self._stop = asyncio.Event()
        self._last_reclaim = 0.0
        self._last_beat = 0.0
        self._backoff = 0.0
        self._reads: dict[int, asyncio.Task] = {}  # on a cluster: one XREADGROUP in flight per slot
        self._batches: set[asyncio.Task] = set()  # batches in hand beside the loop (``concurrency`` > 1)

    @property
    def concurrency(self) -> int:
        """Batches in hand at once: the next is read and handled while earlier ones wait (on
        the database, say). One by default: each batch is done before the next is read."""
        return 1

    async def handle(self, envelope: Envelope) -> None:
        raise NotImplementedError

    def is_outage(self, exc: BaseException) -> bool:
        """Whether ``exc`` means a dependency is down (see ``outage_errors``)."""
        return isinstance(exc, self.outage_errors)

    async def setup(self) -> None:
        """Hook for a stage's own resources; runs before the first read."""

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def ensure_groups(self) -> None:
        for stream in self.streams:
            await self.bus.ensure_group(stream, self.group)

    async def run(self, drain: bool = False) -> None:
        """Consume until stopped; with ``drain``, return once nothing is new or pending."""
        await self.setup()
        await self.ensure_groups()
        log.info("worker.started", consumer=self.consumer, streams=self.streams)
        # Beats run beside the loop, so a long batch does not let the key expire.
        beating = asyncio.create_task(self._beat_forever())
        try:
            await self._loop(drain)
        finally:
            beating.cancel()
            for task in [*self._reads.values(), *self._batches]:
                task.cancel()  # only when cancelled from outside: a normal end waited for them
        await self._beat(force=True)
        log.info("worker.stopped", consumer=self.consumer, **self.counters)

    async def _beat_forever(self) -> None:
        while True:
            try:
                await self._beat(force=True)
            except (*UNAVAILABLE, OSError) as exc:
                log.warning("worker.heartbeat_failed", error=str(exc))
            await asyncio.sleep(self.settings.heartbeat_interval_ms / 1000)

    async def _loop(self, drain: bool) -> None:
        while not self._stop.is_set():
            self.last_tick = time.monotonic()
            metrics.WORKER_LAST_TICK.labels(self.role).set_to_current_time()
            try:
                self._collect_batches()
                busy = await self._reclaim(force=drain)
                batch = await self._read(block_ms=100 if drain else self.settings.block_ms)
                for stream, entries in batch:
                    await self._start_batch(stream, [(i, f, 1) for i, f in entries])
                if drain and not batch and not busy and await self._finish_batches() and await self._idle():
                    break
            except (*UNAVAILABLE, OSError) as exc:
                log.warning("worker.redis_unavailable", error=str(exc))
                await self._sleep(1.0)
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                await self.ensure_groups()
            if self._backoff:
                await self._sleep(self._backoff)
        await self._finish_batches()
        await self._finish_reads()

    async def _start_batch(self, stream: str, entries: list[tuple[bytes, dict | None, int]]) -> None:
        """Handle a batch: at once with ``concurrency`` 1, else as a task once fewer than
        ``concurrency`` are in hand (waiting for one to finish)."""
        if self.concurrency <= 1:
            await self._process_batch(stream, entries)
            return
        while len(self._batches) >= self.concurrency:
            await asyncio.wait(self._batches, return_when=asyncio.FIRST_COMPLETED)
            self._collect_batches()
        task = asyncio.get_running_loop().create_task(self._process_batch(stream, entries))
        self._batches.add(task)

    def _collect_batches(self) -> None:
        """Forget finished batch tasks; what one raised (Redis gone while acking) is raised here,
        inside the loop's error handling, as it would have been without tasks."""
        done = [t for t in self._batches if t.done()]
        self._batches.difference_update(done)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()

    async def _finish_batches(self) -> bool:
        """Wait for the batches in hand; True (for ``and`` chains) once there are none."""
        while self._batches:
            await asyncio.wait(self._batches)
            try:
                self._collect_batches()
            except (*UNAVAILABLE, OSError) as exc:
                log.warning("worker.redis_unavailable", error=str(exc))
        return True

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except TimeoutError:
            pass

    async def _read(self, block_ms: int) -> list[tuple[str, list]]:
        groups = self._slot_groups()
        if len(groups) == 1:
            return await self._read_streams(groups[0], block_ms)
        # A Redis Cluster refuses one XREADGROUP over streams of several slots, so each slot's
        # streams get a blocking read of their own, all in flight at once; whichever answers
        # first is handled, and the others stay in flight for the next turn.
        for i, streams in enumerate(groups):
            if i not in self._reads:
                self._reads[i] = asyncio.create_task(self._read_streams(streams, block_ms))
        done, _ = await asyncio.wait(self._reads.values(), return_when=asyncio.FIRST_COMPLETED)
        return self._collect(done)

    def _collect(self, done: set[asyncio.Task]) -> list[tuple[str, list]]:
        out, errors = [], []
        for i, task in list(self._reads.items()):
            if task in done:
                del self._reads[i]
                if task.exception() is not None:
                    errors.append(task.exception())
                else:
                    out.extend(task.result())
        if errors and not out:
            raise errors[0]
        return out

    async def _finish_reads(self) -> None:
        """Handle what the reads still in flight bring (entries they took are ours to finish)."""
        if not self._reads:
            return
        done, _ = await asyncio.wait(self._reads.values())
        try:
            batch = self._collect(done)
        except (*UNAVAILABLE, OSError) as exc:
            log.warning("worker.redis_unavailable", error=str(exc))
            return
        for stream, entries in batch:
            await self._process_batch(stream, [(i, f, 1) for i, f in entries])

    def _slot_groups(self) -> list[list[str]]:
        """The streams by hash slot: one group on a single server."""
        if not is_cluster(self.redis):
            return [self.streams]
        groups: dict[int, list[str]] = {}
        for stream in self.streams:
            groups.setdefault(self.redis.keyslot(stream), []).append(stream)
        return list(groups.values())

    async def _read_streams(self, streams: list[str], block_ms: int) -> list[tuple[str, list]]:
        reply = await self.redis.xreadgroup(
            self.group, self.consumer, {s: ">" for s in streams},
            count=self.settings.batch_size, block=block_ms,
        )
        return [(_text(stream), entries) for stream, entries in reply or []]

    async def _idle(self) -> bool:
        for stream in self.streams:
            summary = await self.redis.xpending(stream, self.group)
            if summary["pending"]:
                return False
        return True

    async def _reclaim(self, force: bool = False) -> bool:
        """Take over entries idle past the visibility timeout; returns whether any were found."""
        now = time.monotonic()
        if not force and now - self._last_reclaim < self.settings.reclaim_interval_ms / 1000:
            return False
        self._last_reclaim = now
        found = False
        for stream in self.streams:
            reply = await self.redis.xautoclaim(
                stream, self.group, self.consumer, self.settings.visibility_timeout_ms,
                start_id="0-0", count=self.settings.batch_size,
            )
            entries = reply[1]
            if not entries:
                continue
            found = True
            ids = [_text(i) for i, _ in entries]
            pending = await self.redis.xpending_range(
                stream, self.group, min=ids[0], max=ids[-1], count=len(ids) * 2, consumername=self.consumer
            )
            times = {_text(p["message_id"]): p["times_delivered"] for p in pending}
            self.counters["reclaimed"] += len(entries)
            metrics.RECLAIMED.labels(self.role, stream).inc(len(entries))
            await self._process_batch(stream, [(i, f, times.get(_text(i), 1)) for i, f in entries])
        return found

    async def _process_batch(self, stream: str, entries: list[tuple[bytes, dict | None, int]]) -> None:
        acks: list[str] = []
        retried: list[str] = []
        failed = False
        ready: list[tuple[str, bytes, Envelope, int]] = []
        for raw_id, fields, deliveries in entries:
            entry_id = _text(raw_id)
            env = self._unpacked(fields, deliveries) or await self._prepare(stream, entry_id, fields, deliveries)
            if isinstance(env, Envelope):
                ready.append((entry_id, fields[FIELD], env, deliveries))
            elif env.acked:
                acks.append(entry_id)  # nothing left to do, or dead-lettered
            else:
                failed = True
        if ready:
            self.counters["inflight"] += len(ready)
            started = time.perf_counter()
            try:
                results = await self.handle_batch([env for _, _, env, _ in ready])
            except Exception as exc:
                results = [exc] * len(ready)
            finally:
                self.counters["inflight"] -= len(ready)
                share = (time.perf_counter() - started) / len(ready)
                handle_seconds = metrics.HANDLE_SECONDS.labels(self.role)
                for _ in ready:
                    handle_seconds.observe(share)
            ok = ok_retried = 0
            for (entry_id, raw, env, deliveries), error in zip(ready, results, strict=True):
                if error is None:  # counted together below; ``_settle`` for the rest
                    ok += 1
                    acks.append(entry_id)
                    if deliveries > 1:
                        retried.append(entry_id)
                        ok_retried += 1
                    continue
                result = await self._settle(stream, entry_id, raw, env, deliveries, error)
                if result.acked:
                    acks.append(entry_id)
                    if deliveries > 1:
                        retried.append(entry_id)
                else:
                    failed = True
            if ok:
                self.counters[Result.OK] += ok
                self.counters["retried"] += ok_retried
                metrics.HANDLED.labels(self.role, stream, Result.OK).inc(ok)
        if acks:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.xack(stream, self.group, *acks)
                if retried:
                    pipe.hdel(keys.last_error_key(stream, self.group), *retried)
                await pipe.execute()
        # Back off while handlers fail (e.g. the database is down) instead of spinning.
        self._backoff = min(max(self._backoff * 2, 0.1), 5.0) if failed else 0.0

    async def handle_batch(self, envelopes: list[Envelope]) -> list[BaseException | None]:
        """Handle a batch; returns, per envelope, None (done) or the exception it failed with.

        This default handles them one by one with ``handle``; a stage overrides it to share
        work across a batch (``core.batch.Batch``: the normalizer stores a batch in one
        transaction). Once a dependency is down the rest are not attempted: they fail with
        ``NotAttempted``.
        """
        batch = Batch(len(envelopes), self.is_outage, self.role)
        await batch.run(dict(enumerate(envelopes)), single=self._handle_one)
        return batch.results

    async def _handle_one(self, envelope: Envelope) -> None:
        with bound(envelope):
            await self.handle(envelope)

    def _unpacked(self, fields: dict | None, deliveries: int) -> Envelope | None:
        """The entry's envelope when nothing needs awaiting (the common case: well formed, under
        its delivery limit, payload inline); None sends it through ``_prepare``."""
        raw = fields.get(FIELD) if fields else None
        if raw is None or deliveries > self.settings.max_deliveries:
            return None
        try:
            env = Envelope.unpack(raw)
        except EnvelopeError:
            return None
        return None if env.meta.get(BLOB_META) and not env.payload else env

    async def _prepare(self, stream: str, entry_id: str, fields: dict | None, deliveries: int) -> Envelope | Result:
        """The entry's envelope, ready to handle; else what became of it (see ``_settle``)."""
        raw = fields.get(FIELD) if fields else None
        if raw is None:
            # Deleted from the stream while pending: nothing left to process.
            return Result.GONE
        try:
            env = Envelope.unpack(raw)
        except EnvelopeError as exc:
            await self._dead(stream, entry_id, raw, f"envelope: {exc}", deliveries)
            return Result.DEAD
        if deliveries > self.settings.max_deliveries:
            last = await self.redis.hget(keys.last_error_key(stream, self.group), entry_id)
            # Deliveries spent while a dependency was down say nothing about the entry.
            if not (last or b"").startswith(_OUTAGE_MARK):
                with bound(env):
                    await self._dead(stream, entry_id, raw, _text(last or b"max deliveries exceeded"), deliveries)
                return Result.DEAD
        try:
            return await self.bus.materialize(env)
        except Exception as exc:
            return await self._settle(stream, entry_id, raw, env, deliveries, exc)

    async def _settle(self, stream: str, entry_id: str, raw: bytes, env: Envelope, deliveries: int,
                      error: BaseException | None) -> Result:
        """Account for one handled entry: ok or dead (acked), failed or outage (left pending)."""
        if error is None:
            self.counters[Result.OK] += 1
            metrics.HANDLED.labels(self.role, stream, Result.OK).inc()
            if deliveries > 1:
                self.counters["retried"] += 1
            return Result.OK
        with bound(env):
            if isinstance(error, PermanentError):
                await self._dead(stream, entry_id, raw, f"{type(error).__name__}: {error}", deliveries)
                return Result.DEAD
            reason = f"{type(error).__name__}: {error}"[:4000]
            if isinstance(error, NotAttempted):
                # Left for later because of the entry before it: no attempt to count.
                await self.redis.hset(keys.last_error_key(stream, self.group), entry_id, _OUTAGE_MARK.decode() + reason)
                return Result.OUTAGE
            outage = self.is_outage(error)
            result = Result.OUTAGE if outage else Result.FAILED
            self.counters[result] += 1
            metrics.HANDLED.labels(self.role, stream, "retry").inc()
            if outage:
                log.warning("worker.dependency_down", entry_id=entry_id, error=reason)
            else:
                log.error("worker.handle_failed", entry_id=entry_id, deliveries=deliveries,
                          exc_info=(type(error), error, error.__traceback__))
            await self.redis.hset(keys.last_error_key(stream, self.group), entry_id,
                                  _OUTAGE_MARK.decode() + reason if outage else reason)
            return result

    async def _dead(self, stream: str, entry_id: str, raw: bytes, error: str, deliveries: int) -> None:
        self.counters[Result.DEAD] += 1
        metrics.HANDLED.labels(self.role, stream, Result.DEAD).inc()
        metrics.DEAD_LETTERED.labels(self.role, stream).inc()
        log.warning("worker.dead_letter", entry_id=entry_id, stream=stream, error=error)
        await self.bus.dead_letter(stream, self.group, entry_id, raw, error, deliveries)

    async def _beat(self, force: bool = False) -> None:
        now = time.monotonic()
        interval = self.settings.heartbeat_interval_ms / 1000
        if not force and now - self._last_beat < interval:
            return
        self._last_beat = now
        key = keys.heartbeat_key(self.role, self.consumer)
        fields = {k: str(v) for k, v in self.counters.items()}
        fields.update(at=str(now_ms()), pid=str(os.getpid()), streams=",".join(self.streams),
                      loop_age_ms=str(int((time.monotonic() - self.last_tick) * 1000) if self.last_tick else -1))
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(key, mapping=fields)
            pipe.pexpire(key, max(int(interval * 3000), 500))
            await pipe.execute()
