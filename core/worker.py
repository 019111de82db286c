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
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core import keys, metrics
from core.bus import Bus, _text
from core.envelope import FIELD, Envelope
from core.errors import EnvelopeError, PermanentError
from core.ids import new_id, now_ms
from core.settings import Settings

log = structlog.get_logger()

_DONE, _FAILED, _OUTAGE = "done", "failed", "outage"
_OUTAGE_MARK = b"outage: "


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
        await self._beat(force=True)
        log.info("worker.stopped", consumer=self.consumer, **self.counters)

    async def _beat_forever(self) -> None:
        while True:
            try:
                await self._beat(force=True)
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                log.warning("worker.heartbeat_failed", error=str(exc))
            await asyncio.sleep(self.settings.heartbeat_interval_ms / 1000)

    async def _loop(self, drain: bool) -> None:
        while not self._stop.is_set():
            self.last_tick = time.monotonic()
            metrics.WORKER_LAST_TICK.labels(self.role).set_to_current_time()
            try:
                busy = await self._reclaim(force=drain)
                batch = await self._read(block_ms=100 if drain else self.settings.block_ms)
                for stream, entries in batch:
                    await self._process_batch(stream, [(i, f, 1) for i, f in entries])
                if drain and not batch and not busy and await self._idle():
                    break
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                log.warning("worker.redis_unavailable", error=str(exc))
                await self._sleep(1.0)
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                await self.ensure_groups()
            if self._backoff:
                await self._sleep(self._backoff)

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except TimeoutError:
            pass

    async def _read(self, block_ms: int) -> list[tuple[str, list]]:
        reply = await self.redis.xreadgroup(
            self.group, self.consumer, {s: ">" for s in self.streams},
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
        for n, (raw_id, fields, deliveries) in enumerate(entries):
            entry_id = _text(raw_id)
            outcome = await self._process(stream, entry_id, fields, deliveries)
            if outcome == _DONE:
                acks.append(entry_id)
                if deliveries > 1:
                    retried.append(entry_id)
            else:
                failed = True
                if outcome == _OUTAGE:
                    # The rest of the batch would fail the same way: it stays pending, is taken
                    # back after the visibility timeout, and this delivery does not count.
                    rest = {_text(i): _OUTAGE_MARK + b"not attempted" for i, _, _ in entries[n + 1:]}
                    if rest:
                        await self.redis.hset(keys.last_error_key(stream, self.group), mapping=rest)
                    break
        if acks:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.xack(stream, self.group, *acks)
                if retried:
                    pipe.hdel(keys.last_error_key(stream, self.group), *retried)
                await pipe.execute()
        # Back off while handlers fail (e.g. the database is down) instead of spinning.
        self._backoff = min(max(self._backoff * 2, 0.1), 5.0) if failed else 0.0

    async def _process(self, stream: str, entry_id: str, fields: dict | None, deliveries: int) -> str:
        """Handle one entry: _DONE (handled or dead-lettered), _FAILED or _OUTAGE (left pending)."""
        raw = fields.get(FIELD) if fields else None
        if raw is None:
            # Deleted from the stream while pending: nothing left to process.
            return _DONE
        try:
            env = Envelope.unpack(raw)
        except EnvelopeError as exc:
            await self._dead(stream, entry_id, raw, f"envelope: {exc}", deliveries)
            return _DONE
        with structlog.contextvars.bound_contextvars(
            trace_id=env.trace_id, tenant=env.tenant, channel=env.channel, envelope_id=env.id
        ):
            if deliveries > self.settings.max_deliveries:
                last = await self.redis.hget(keys.last_error_key(stream, self.group), entry_id)
                # Deliveries spent while a dependency was down say nothing about the entry.
                if not (last or b"").startswith(_OUTAGE_MARK):
                    await self._dead(stream, entry_id, raw, _text(last or b"max deliveries exceeded"), deliveries)
                    return _DONE
            self.counters["inflight"] += 1
            started = time.perf_counter()
            try:
                await self.bus.materialize(env)
                await self.handle(env)
            except PermanentError as exc:
                await self._dead(stream, entry_id, raw, f"{type(exc).__name__}: {exc}", deliveries)
                return _DONE
            except Exception as exc:
                outage = self.is_outage(exc)
                self.counters["outage" if outage else "failed"] += 1
                metrics.HANDLED.labels(self.role, stream, "retry").inc()
                if outage:
                    log.warning("worker.dependency_down", entry_id=entry_id, error=f"{type(exc).__name__}: {exc}")
                else:
                    log.error("worker.handle_failed", entry_id=entry_id, deliveries=deliveries, exc_info=True)
                reason = f"{type(exc).__name__}: {exc}"[:4000]
                await self.redis.hset(keys.last_error_key(stream, self.group), entry_id,
                                      _OUTAGE_MARK.decode() + reason if outage else reason)
                return _OUTAGE if outage else _FAILED
            finally:
                self.counters["inflight"] -= 1
                metrics.HANDLE_SECONDS.labels(self.role).observe(time.perf_counter() - started)
        self.counters["ok"] += 1
        metrics.HANDLED.labels(self.role, stream, "ok").inc()
        if deliveries > 1:
            self.counters["retried"] += 1
        return _DONE

    async def _dead(self, stream: str, entry_id: str, raw: bytes, error: str, deliveries: int) -> None:
        self.counters["dead"] += 1
        metrics.HANDLED.labels(self.role, stream, "dead").inc()
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
