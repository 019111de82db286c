"""What ``switchboard ops ...`` does to the bus: inspect streams, dead letters, consumers; replay; trim.

Every function takes a ``redis.asyncio`` client and returns plain data; ops/cli.py prints it.
"""

from __future__ import annotations

from collections.abc import Callable

from core import keys
from core.bus import Bus
from core.envelope import FIELD, Envelope
from core.errors import EnvelopeError
from core.metrics import stream_names, stream_stats

_FIELD = FIELD.decode()


class OpsError(Exception):
    """A request the bus cannot satisfy (unknown stream, entry, ...)."""


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def streams(redis) -> list[dict]:
    """Every stream with length, and per group: lag, pending, consumers, oldest pending age."""
    out = []
    for s in await stream_stats(redis):
        for g in s["groups"]:
            g["oldest_pending_age_s"] = None
            if g["pending"]:
                # Not one read with the count: a worker may ack the last entry in between.
                oldest = await redis.xpending_range(s["stream"], g["group"], min="-", max="+", count=1)
                if oldest:
                    g["oldest_pending_age_s"] = round(oldest[0]["time_since_delivered"] / 1000, 1)
            g["consumer_list"] = [
                {"name": _text(c["name"]), "pending": c["pending"], "idle_s": round(c["idle"] / 1000, 1)}
                for c in await redis.xinfo_consumers(s["stream"], g["group"])
            ]
        out.append(s)
    return out


async def _dead_streams(redis, stream: str | None) -> list[str]:
    if stream:
        name = stream if stream.startswith(keys.DEAD_PREFIX) else keys.dead_stream(stream)
        if not await redis.exists(name):
            raise OpsError(f"no dead letters for {stream}")
        return [name]
    return [n for n in await stream_names(redis) if n.startswith(keys.DEAD_PREFIX)]


def _describe(dead_stream: str, entry_id: str, fields: dict, full: bool = False) -> dict:
    f = {_text(k): v for k, v in fields.items()}
    row = {
        "dead_stream": dead_stream,
        "id": entry_id,
        "source": _text(f.get("source", b"")),
        "entry_id": _text(f.get("entry_id", b"")),
        "group": _text(f.get("group", b"")),
        "deliveries": int(f.get("deliveries", b"0")),
        "failed_at": int(f.get("failed_at", b"0")),
        "error": _text(f.get("error", b"")),
    }
    raw = f.get(_FIELD, b"")
    try:
        env = Envelope.unpack(raw)
        row.update(envelope_id=env.id, tenant=env.tenant, channel=env.channel, account=env.account,
                   content_type=env.content_type, size=len(env.payload))
        if full:
            row.update(trace_id=env.trace_id, received_at=env.received_at, meta=env.meta,
                       payload_preview=env.payload[:2000].decode("utf-8", "replace"))
    except EnvelopeError as exc:
        row.update(envelope_id=None, envelope_error=str(exc), size=len(raw))
        if full:
            row["payload_preview"] = bytes(raw[:2000]).decode("utf-8", "replace")
    return row


async def dead_list(redis, stream: str | None = None, limit: int = 100) -> list[dict]:
    rows = []
    for name in await _dead_streams(redis, stream):
        for entry_id, fields in await redis.xrange(name, count=limit):
            rows.append(_describe(name, _text(entry_id), fields))
    return rows


async def dead_show(redis, stream: str, entry_id: str) -> dict:
    [name] = await _dead_streams(redis, stream)
    found = await redis.xrange(name, min=entry_id, max=entry_id)
    if not found:
        raise OpsError(f"no dead letter {entry_id} in {name}")
    return _describe(name, entry_id, found[0][1], full=True)


async def _select(redis, name: str, ids: list[str], all_: bool) -> list[tuple[str, dict]]:
    if all_:
        return [(_text(i), f) for i, f in await redis.xrange(name)]
    picked = []
    for entry_id in ids:
        found = await redis.xrange(name, min=entry_id, max=entry_id)
        if not found:
            raise OpsError(f"no dead letter {entry_id} in {name}")
        picked.append((entry_id, found[0][1]))
    return picked


async def dead_replay(redis, stream: str, ids: list[str], all_: bool = False) -> list[dict]:
    """Put each dead letter's original envelope back on its source stream, then drop it.

    XADD first, XDEL after: on a Redis Cluster the two streams are on different slots, so
    they cannot share a MULTI. Interrupted between them, a letter is replayed and still
    listed; replaying it again is harmless (the store dedups the message).
    """
    [name] = await _dead_streams(redis, stream)
    out = []
    for entry_id, fields in await _select(redis, name, ids, all_):
        f = {_text(k): v for k, v in fields.items()}
        source = _text(f.get("source", b"")) or name[len(keys.DEAD_PREFIX):]
        new_id = await redis.xadd(source, {FIELD: f.get(_FIELD, b"")})
        await redis.xdel(name, entry_id)
        out.append({"dead_id": entry_id, "stream": source, "new_id": _text(new_id)})
    return out


async def dead_drop(redis, stream: str, ids: list[str], all_: bool = False) -> int:
    [name] = await _dead_streams(redis, stream)
    picked = [i for i, _ in await _select(redis, name, ids, all_)]
    return int(await redis.xdel(name, *picked)) if picked else 0


async def replay(redis, stream: str, start: str, end: str,
                 progress: Callable[[int, int], None] | None = None) -> int:
    """Re-add the stored envelopes of ``stream`` between two ids as new entries.

    Consumers parse them again; the store's dedup key makes that safe (no message twice).
    """
    if not await redis.exists(stream):
        raise OpsError(f"no stream {stream}")
    total = sum(1 for _ in await redis.xrange(stream, min=start, max=end))
    done, cursor = 0, start
    while True:
        batch = await redis.xrange(stream, min=cursor, max=end, count=500)
        if not batch:
            break
        async with redis.pipeline(transaction=False) as pipe:
            for _, fields in batch:
                pipe.xadd(stream, {FIELD: fields[FIELD]})
            await pipe.execute()
        done += len(batch)
        if progress:
            progress(done, total)
        last = _text(batch[-1][0])
        ms, seq = (int(x) for x in last.split("-"))
        cursor = f"{ms}-{seq + 1}"
        if len(batch) < 500:
            break
    return done


async def _live_consumers(redis) -> set[str]:
    live = set()
    async for key in redis.scan_iter(match=keys.HEARTBEAT_PATTERN, count=500):
        live.add(_text(key).rsplit(":", 1)[1])
    return live


async def prune_consumers(redis, idle_ms: int, dry_run: bool = False) -> list[dict]:
    """Remove consumers with no heartbeat that sat idle ``idle_ms``, their pending entries
    handed to a live consumer of the group first, marked idle so the next reclaim takes them.
    """
    live = await _live_consumers(redis)
    pruned = []
    for s in await stream_stats(redis):
        stream = s["stream"]
        if stream.startswith(keys.DEAD_PREFIX):
            continue
        for g in s["groups"]:
            group = g["group"]
            consumers = await redis.xinfo_consumers(stream, group)
            alive = [_text(c["name"]) for c in consumers if _text(c["name"]) in live]
            for c in consumers:
                name = _text(c["name"])
                if name in live or c["idle"] < idle_ms:
                    continue
                moved = 0
                if not dry_run:
                    moved = await _hand_over(redis, stream, group, name, alive[0] if alive else "ops-reclaim")
                    await redis.xgroup_delconsumer(stream, group, name)
                pruned.append({"stream": stream, "group": group, "consumer": name,
                               "pending": c["pending"], "moved": moved, "idle_s": round(c["idle"] / 1000, 1)})
    return pruned


async def _hand_over(redis, stream: str, group: str, dead: str, to: str) -> int:
    moved = 0
    while True:
        pending = await redis.xpending_range(stream, group, min="-", max="+", count=500, consumername=dead)
        if not pending:
            return moved
        ids = [_text(p["message_id"]) for p in pending]
        # JUSTID keeps the delivery count; IDLE far in the past makes the next XAUTOCLAIM
        # of any live worker take them at once.
        await redis.xclaim(stream, group, to, 0, ids, idle=10 * 365 * 86_400_000, justid=True)
        moved += len(ids)


async def trim(bus: Bus, streams: list[str] | None = None, older_than_s: int | None = None) -> dict[str, int]:
    """Safe trim: only entries every group has acked (and older than ``older_than_s``)."""
    names = streams or [n for n in await stream_names(bus.redis) if not n.startswith(keys.DEAD_PREFIX)]
    older = older_than_s * 1000 if older_than_s is not None else None
    return {name: await bus.safe_trim(name, older) for name in names}


async def heartbeats(redis) -> list[dict]:
    """Every worker's heartbeat (role, consumer, when, counters); a stopped worker's key has expired."""
    out = []
    async for key in redis.scan_iter(match=keys.HEARTBEAT_PATTERN, count=500):
        _, _, role, consumer = _text(key).split(":", 3)
        fields = {_text(k): _text(v) for k, v in (await redis.hgetall(key)).items()}
        if not fields:
            continue  # expired between SCAN and HGETALL
        meta = {k: fields.pop(k, "") for k in ("at", "pid", "streams", "loop_age_ms")}
        out.append({"role": role, "consumer": consumer, "at": int(meta["at"] or 0), "pid": meta["pid"],
                    "streams": meta["streams"], "loop_age_ms": int(meta["loop_age_ms"] or -1),
                    "counters": dict(sorted(fields.items()))})
    return sorted(out, key=lambda h: (h["role"], h["consumer"]))
