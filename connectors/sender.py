"""The ``sender`` stage: sends replies from ``outbound.<channel>`` with each channel's ``send``.

One entry names one outbox row. The row is claimed for each attempt (``Outbox.begin_attempt``),
so a duplicate entry or a reclaimed one never sends twice at once, and a finished row is
never sent again. The channel's answer decides: ``Sent`` records sent/delivered,
``TemporaryFailure`` waits (exponential backoff, full jitter) and the relay puts the row back
on the stream, until the channel's attempt limit fails it; ``PermanentFailure`` fails it
with the platform's code and words. A sender killed mid-send leaves its entry pending; it
is reclaimed and sent again with the same handle (email: the same Message-ID).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import aiohttp
import msgpack
import structlog

from connectors.senders import SENDERS
from connectors.senders import channels as outbound_channels
from core import keys
from core.bus import Bus
from core.envelope import Envelope
from core.errors import PermanentError
from core.outbound import Outgoing, PermanentFailure, TemporaryFailure
from core.outbox import AttemptInProgress, Outbox, backoff_ms
from core.settings import Settings
from core.worker import Worker

log = structlog.get_logger()
CONTENT_TYPE = "application/vnd.switchboard.outbox+msgpack"
# Network trouble a sender did not turn into a TemporaryFailure itself.
_TRANSIENT = (OSError, aiohttp.ClientError, asyncio.TimeoutError)


def entry(outbox_id: int, tenant: str, channel: str) -> Envelope:
    """The stream entry that asks for one outbox row to be sent."""
    return Envelope(tenant=tenant, channel=channel, account="", content_type=CONTENT_TYPE,
                    payload=msgpack.packb({"outbox_id": outbox_id}))


def outbox_id(env: Envelope) -> int:
    if env.content_type != CONTENT_TYPE:
        raise PermanentError(f"not an outbox entry: {env.content_type}")
    try:
        value = msgpack.unpackb(env.payload)["outbox_id"]
    except Exception as exc:
        raise PermanentError(f"bad outbox entry: {exc}") from exc
    if type(value) is not int:
        raise PermanentError("outbox entry without an integer outbox_id")
    return value


@dataclass
class Context:
    """``core.outbound.SendContext``: what a channel's ``send`` may use."""

    redis: Any
    http: Any
    settings: Settings


class Sender(Worker):
    role = "sender"
    group = keys.GROUP_SENDER

    def __init__(self, bus: Bus, settings: Settings, outbox: Outbox, channels: list[str] | None = None,
                 consumer: str | None = None) -> None:
        channels = sorted(channels or outbound_channels())
        super().__init__(bus, settings, [keys.outbound_stream(c) for c in channels], consumer)
        self.outbox = outbox
        self.http: aiohttp.ClientSession | None = None

    async def setup(self) -> None:
        if self.http is None:
            self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))

    async def run(self, drain: bool = False) -> None:
        try:
            await super().run(drain)
        finally:
            if self.http is not None:
                await self.http.close()
                self.http = None

    async def handle_batch(self, envelopes: list[Envelope]) -> list[BaseException | None]:
        """The sends of a batch at once, at most ``send_concurrency``: each waits on its platform,
        not on the others (`make bench` outbound, one sender, 1,000 mails to a local relay:
        70 replies/s one at a time, 100/s with 16 in flight, queued->sent p99 8.1 s -> 1.9 s)."""
        limit = asyncio.Semaphore(max(1, self.settings.send_concurrency))

        async def one(envelope: Envelope) -> BaseException | None:
            async with limit:
                try:
                    await self._handle_one(envelope)
                except Exception as exc:
                    return exc
            return None

        return list(await asyncio.gather(*(one(e) for e in envelopes)))

    async def handle(self, envelope: Envelope) -> None:
        # The lease ends before the entry can be reclaimed, so a killed sender's reply is taken up again.
        lease = int(self.settings.visibility_timeout_ms * 0.9)
        try:
            out = await self.outbox.begin_attempt(outbox_id(envelope), lease)
        except AttemptInProgress:
            raise  # left pending: reclaimed after the other attempt ended or timed out
        if out is None:
            return  # already sent or failed: a duplicate entry
        await self._send(out)

    async def _send(self, out: Outgoing) -> None:
        send = SENDERS.get(out.channel)
        if send is None:
            await self.outbox.record_failed(out, "no_sender", f"no sender for channel {out.channel}")
            return
        try:
            sent = await send(out, Context(self.redis, self.http, self.settings))
        except PermanentFailure as exc:
            log.info("outbound.failed", outbox_id=out.outbox_id, code=exc.code, attempt=out.attempt)
            await self.outbox.record_failed(out, exc.code, exc.message)
            return
        except TemporaryFailure as exc:
            await self._retry(out, exc.code, exc.message, exc.retry_after_s)
            return
        except _TRANSIENT as exc:
            await self._retry(out, "network", f"{type(exc).__name__}: {exc}", None)
            return
        log.info("outbound.sent", outbox_id=out.outbox_id, attempt=out.attempt, status=sent.status)
        await self.outbox.record_sent(out, sent)

    async def _retry(self, out: Outgoing, code: str, message: str, after_s: float | None) -> None:
        s = self.settings
        if out.attempt >= s.max_attempts(out.channel):
            log.info("outbound.gave_up", outbox_id=out.outbox_id, code=code, attempts=out.attempt)
            await self.outbox.record_failed(out, code, message)
            return
        delay = backoff_ms(out.attempt, s.send_backoff_base_s, s.send_backoff_cap_s)
        if after_s is not None:
            delay = max(delay, int(after_s * 1000))
        log.info("outbound.retry", outbox_id=out.outbox_id, code=code, attempt=out.attempt, delay_ms=delay)
        await self.outbox.record_retry(out, code, message, delay)
