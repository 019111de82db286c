"""Every Prometheus metric in one place (prometheus-client, the default registry).

Counters and histograms are updated where things happen; the stream gauges (length, lag,
pending, dead letters) are read from Redis by :class:`StreamGauges`, which every role
process runs, so any one scrape shows the whole bus.
"""

from __future__ import annotations

import asyncio
import time

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from redis.exceptions import RedisError, ResponseError

from core import keys

log = structlog.get_logger()

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

INGRESS = Counter(
    "switchboard_ingress_messages_total",
    "Messages offered to an ingress, by channel and outcome (accepted, or rejected with a reason).",
    ["channel", "outcome", "reason"],
)
HANDLED = Counter(
    "switchboard_handled_total", "Stream entries a stage finished, by outcome (ok, dead, retry).",
    ["stage", "stream", "outcome"],
)
RECLAIMED = Counter(
    "switchboard_reclaimed_total", "Entries taken over from another consumer after the visibility timeout.",
    ["stage", "stream"],
)
DEAD_LETTERED = Counter(
    "switchboard_dead_lettered_total", "Entries moved to dead.<stream>.", ["stage", "stream"],
)
HANDLE_SECONDS = Histogram(
    "switchboard_handle_seconds", "Time a stage spent handling one entry.", ["stage"], buckets=_LATENCY_BUCKETS,
)
INGRESS_TO_TICKET = Histogram(
    "switchboard_ingress_to_ticket_seconds", "From ingress (XADD) to the message committed on a ticket.",
    buckets=_LATENCY_BUCKETS,
)
INGRESS_TO_ASSIGNED = Histogram(
    "switchboard_ingress_to_assigned_seconds", "From ingress to the ticket assigned to an agent.",
    buckets=_LATENCY_BUCKETS,
)
AUTO_MAIL = Counter(
    "switchboard_auto_mail_total",
    "Bulk or machine-made messages by what was done with them (ticket: opened one marked auto, "
    "dropped: the mailbox drops them, kept: joined a thread or stored without a ticket).",
    ["channel", "action"],
)
ROUTER_QUEUE_DEPTH = Gauge(
    "switchboard_router_queue_depth", "Tickets waiting for an agent, by tenant and VIP tier.",
    ["tenant", "vip_tier"],
)
ROUTER_DECISIONS = Counter(
    "switchboard_router_decisions_total", "Routing decisions by outcome (assigned, queued, escalated, lost_race).",
    ["outcome"],
)
ROUTER_ERRORS = Counter(
    "switchboard_router_errors_total",
    "Entries the router passed over because they failed: a stored rule or waiting ticket's requirements "
    "it cannot read (bad_rule, bad_requirements), or one step of the periodic pass (escalation, reconcile, pull).",
    ["kind"],
)
IMAP_LEASE_HELD = Gauge(
    "switchboard_imap_lease_held", "1 while this poller holds the lease on a mailbox folder (account:folder).",
    ["mailbox"],
)
IMAP_LAST_POLL = Gauge(
    "switchboard_imap_last_poll_timestamp_seconds", "When a mailbox folder (account:folder) was last searched.",
    ["mailbox"],
)
STREAM_LENGTH = Gauge("switchboard_stream_length", "XLEN of a stream.", ["stream"])
GROUP_LAG = Gauge("switchboard_group_lag", "Entries of a stream not yet delivered to a group.", ["stream", "group"])
GROUP_PENDING = Gauge("switchboard_group_pending", "Entries delivered to a group but not acked.", ["stream", "group"])
GROUP_CONSUMERS = Gauge("switchboard_group_consumers", "Consumers registered in a group.", ["stream", "group"])
DEAD_LETTERS = Gauge("switchboard_dead_letters", "Entries waiting in dead.<stream>.", ["stream"])
WORKER_LAST_TICK = Gauge(
    "switchboard_worker_last_tick_timestamp_seconds", "When this process's consumer loop last went round.", ["stage"],
)


def exposition() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def stream_names(redis) -> list[str]:
    """Every stream of the bus: ingest.*, ticket.events, outbound.* and the dead-letter streams."""
    names: set[str] = set()
    for pattern in (f"{keys.INGEST_PREFIX}*", keys.TICKET_EVENTS, f"{keys.OUTBOUND_PREFIX}*", f"{keys.DEAD_PREFIX}*"):
        async for key in redis.scan_iter(match=pattern, count=500, _type="stream"):
            names.add(_text(key))
    return sorted(names)


async def stream_stats(redis) -> list[dict]:
    """Length, and per group lag, pending and consumers, for every stream."""
    out = []
    for stream in await stream_names(redis):
        length = await redis.xlen(stream)
        try:
            groups = await redis.xinfo_groups(stream)
        except ResponseError:
            groups = []
        out.append({
            "stream": stream,
            "length": length,
            "groups": [{
                "group": _text(g["name"]),
                "consumers": g["consumers"],
                "pending": g["pending"],
                "lag": await _lag(redis, stream, g),
                "last_delivered": _text(g["last-delivered-id"]),
            } for g in groups],
        })
    return out


_LAG_SCAN_CAP = 10_000


async def _lag(redis, stream: str, group: dict) -> int | None:
    """Entries not yet delivered to the group.

    Redis >= 7 reports it (None when it cannot tell, after deletions); older servers (the
    embedded 6.2) get a count of what follows the last delivered id, up to a cap.
    """
    if "lag" in group:
        return group["lag"]
    last = _text(group["last-delivered-id"])
    after = await redis.xrange(stream, min=f"({last}", max="+", count=_LAG_SCAN_CAP)
    return len(after)


class StreamGauges:
    """Refresh the stream gauges from Redis every ``interval`` seconds."""

    def __init__(self, redis, interval: float = 5.0) -> None:
        self.redis = redis
        self.interval = interval
        self.refreshed_at = 0.0

    async def refresh(self) -> None:
        for s in await stream_stats(self.redis):
            stream = s["stream"]
            if stream.startswith(keys.DEAD_PREFIX):
                DEAD_LETTERS.labels(stream[len(keys.DEAD_PREFIX):]).set(s["length"])
                continue
            STREAM_LENGTH.labels(stream).set(s["length"])
            for g in s["groups"]:
                GROUP_PENDING.labels(stream, g["group"]).set(g["pending"])
                GROUP_CONSUMERS.labels(stream, g["group"]).set(g["consumers"])
                if g["lag"] is not None:
                    GROUP_LAG.labels(stream, g["group"]).set(g["lag"])
        self.refreshed_at = time.time()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.refresh()
            except (RedisError, OSError) as exc:
                log.warning("metrics.refresh_failed", error=str(exc))
            try:
                await asyncio.wait_for(stop.wait(), self.interval)
            except TimeoutError:
                pass
