"""The shared consumer loop against a real Redis: ack, retry, dead letters, reclaim, trim."""

import asyncio

import pytest
import redis.asyncio as aioredis

from core import keys
from core.blobs import BlobStore
from core.bus import Bus
from core.envelope import FIELD, Envelope
from core.errors import PermanentError
from core.settings import load
from core.worker import Worker

STREAM = "ingest.test"


class Recorder(Worker):
    role = "test"
    group = "testers"

    def __init__(self, *args, delay: float = 0.0, **kw):
        super().__init__(*args, **kw)
        self.seen: list[bytes] = []
        self.delay = delay

    async def handle(self, envelope: Envelope) -> None:
        if envelope.payload == b"poison":
            raise RuntimeError("poison")
        if envelope.payload == b"hopeless":
            raise PermanentError("cannot ever parse this")
        await asyncio.sleep(self.delay)
        self.seen.append(envelope.payload)


@pytest.fixture
async def bus(redis_url, tmp_path):
    client = aioredis.Redis.from_url(redis_url)
    yield Bus(client, BlobStore(tmp_path / "blobs"), blob_threshold=1024)
    await client.aclose()


def settings(**kw):
    base = dict(visibility_timeout_ms=100, reclaim_interval_ms=50, max_deliveries=3, block_ms=50, batch_size=10)
    return load(env={}).replace(**{**base, **kw})


def env(payload: bytes) -> Envelope:
    # Round-trip through msgpack like a real publisher so a bad field fails here.
    return Envelope.unpack(Envelope(tenant="t", channel="test", account="1", payload=payload).pack())


async def test_poison_pill_between_good_entries_is_dead_lettered(bus):
    # Good entries are processed; an undecodable entry and a handler that keeps failing end in dead letters.
    await bus.publish(STREAM, env(b"one"))
    await bus.redis.xadd(STREAM, {FIELD: b"\x93not an envelope"})
    await bus.publish(STREAM, env(b"poison"))
    await bus.publish(STREAM, env(b"hopeless"))
    await bus.publish(STREAM, env(b"two"))
    worker = Recorder(bus, settings(), [STREAM])
    await asyncio.wait_for(worker.run(drain=True), 20)
    assert worker.seen == [b"one", b"two"]
    dead = await bus.redis.xrange(f"dead.{STREAM}")
    reasons = {d[b"error"].decode(): int(d[b"deliveries"]) for _, d in dead}
    assert len(dead) == 3
    assert reasons["RuntimeError: poison"] == 4  # delivered max_deliveries times, then moved
    assert reasons["PermanentError: cannot ever parse this"] == 1  # no retry for bad input
    assert any(r.startswith("envelope: not msgpack") for r in reasons)
    assert all(d[b"source"] == STREAM.encode() and d[b"group"] == b"testers" for _, d in dead)
    assert (await bus.redis.xpending(STREAM, "testers"))["pending"] == 0
    assert await bus.redis.hlen(keys.last_error_key(STREAM, "testers")) == 0


async def test_crashed_consumer_entries_are_reclaimed_once(bus):
    # A consumer that read but never acked (crashed) has its entries taken over after the timeout.
    for i in range(5):
        await bus.publish(STREAM, env(b"m%d" % i))
    await bus.ensure_group(STREAM, "testers")
    await bus.redis.xreadgroup("testers", "crashed", {STREAM: ">"}, count=3)
    worker = Recorder(bus, settings(), [STREAM])
    await asyncio.wait_for(worker.run(drain=True), 20)
    assert sorted(worker.seen) == [b"m0", b"m1", b"m2", b"m3", b"m4"]
    assert worker.counters["reclaimed"] == 3
    assert await bus.redis.xlen(f"dead.{STREAM}") == 0


async def test_large_payload_travels_by_claim_check(bus):
    big = b"x" * 5000
    await bus.publish(STREAM, env(big))
    [(_, fields)] = await bus.redis.xrange(STREAM)
    assert len(fields[FIELD]) < 1000 and Envelope.unpack(fields[FIELD]).meta["blob"].startswith("sha256/")
    worker = Recorder(bus, settings(), [STREAM])
    await asyncio.wait_for(worker.run(drain=True), 20)
    assert worker.seen == [big]


async def test_stop_finishes_and_acks_the_batch_in_hand(bus):
    # SIGTERM semantics: stop reading, finish the current batch, leave nothing pending.
    for i in range(40):
        await bus.publish(STREAM, env(b"%d" % i))
    worker = Recorder(bus, settings(batch_size=10, block_ms=20), [STREAM], delay=0.01)
    task = asyncio.create_task(worker.run())
    while not worker.seen:
        await asyncio.sleep(0.005)
    worker.stop()
    await asyncio.wait_for(task, 10)
    assert len(worker.seen) % 10 == 0 and 10 <= len(worker.seen) < 40
    assert (await bus.redis.xpending(STREAM, "testers"))["pending"] == 0


async def test_safe_trim_keeps_pending_and_undelivered_entries(bus):
    ids = [await bus.publish(STREAM, env(b"%d" % i)) for i in range(10)]
    await bus.ensure_group(STREAM, "a")
    read = await bus.redis.xreadgroup("a", "c1", {STREAM: ">"}, count=6)
    delivered = [i.decode() for i, _ in read[0][1]]
    await bus.redis.xack(STREAM, "a", *delivered[:2], *delivered[3:])  # ids[2] stays pending
    assert await bus.safe_trim(STREAM) == 2
    remaining = [i.decode() for i, _ in await bus.redis.xrange(STREAM)]
    assert remaining == ids[2:]
    # A second group that has read nothing yet pins everything that is left.
    await bus.redis.xgroup_create(STREAM, "b", id="0")
    assert await bus.safe_trim(STREAM) == 0
    assert await bus.redis.xlen(STREAM) == 8


async def test_trim_without_groups_removes_nothing(bus):
    for i in range(3):
        await bus.publish(STREAM, env(b"%d" % i))
    assert await bus.safe_trim(STREAM) == 0
    assert await bus.redis.xlen(STREAM) == 3


async def test_concurrent_publishes_share_round_trips_and_each_gets_its_own_entry(bus):
    # Every third payload is claim-checked: its publisher waits on the blob store while
    # others are queued and sent.
    envs = [Envelope(tenant="t", channel="test", account="1", payload=f"m{i}".encode() * (400 if i % 3 else 1))
            for i in range(200)]
    ids = await asyncio.wait_for(asyncio.gather(*(bus.publish(STREAM, env) for env in envs)), 10)
    entries = await bus.redis.xrange(STREAM)
    assert len(set(ids)) == 200 and len(entries) == 200
    stored = {entry_id.decode(): (await bus.materialize(Envelope.unpack(fields[FIELD]))).payload
              for entry_id, fields in entries}
    assert [stored[i] for i in ids] == [env.payload for env in envs]  # each caller got its own id


async def test_a_refused_xadd_fails_only_its_caller(bus):
    await bus.redis.set("not-a-stream", "x")
    env = Envelope(tenant="t", channel="test", account="1", payload=b"x")
    good, bad, also_good = await asyncio.gather(
        bus.publish(STREAM, env), bus.publish("not-a-stream", env), bus.publish(STREAM, env),
        return_exceptions=True)
    assert "WRONGTYPE" in str(bad)
    assert await bus.redis.xlen(STREAM) == 2 and {good, also_good} == {e.decode() for e, _ in await bus.redis.xrange(STREAM)}


async def test_one_call_over_several_streams_gets_each_entry_id_in_order(bus):
    # One script call per stream; the ids come back in the order the call named the entries.
    items = [(STREAM if i % 2 else "ingest.other", Envelope(tenant="t", channel="test", account="1",
                                                           payload=f"p{i}".encode())) for i in range(9)]
    ids = await bus.publish_many(items)
    for (stream, env), entry_id in zip(items, ids, strict=True):
        [(found, fields)] = await bus.redis.xrange(stream, entry_id, entry_id)
        assert found.decode() == entry_id and Envelope.unpack(fields[FIELD]).payload == env.payload
    assert (await bus.redis.xlen(STREAM), await bus.redis.xlen("ingest.other")) == (4, 5)
    await bus.redis.set("not-a-stream", "x")
    with pytest.raises(aioredis.ResponseError, match="WRONGTYPE"):
        await bus.publish_many([(STREAM, items[0][1]), ("not-a-stream", items[1][1])])
    assert await bus.redis.xlen(STREAM) == 5  # the other stream's entry went in all the same


async def test_publish_fails_while_redis_is_unreachable_and_works_after(tmp_path):
    from support import free_port
    down = Bus(aioredis.Redis(port=free_port(), socket_connect_timeout=1), BlobStore(tmp_path / "b"), 1024)
    env = Envelope(tenant="t", channel="test", account="1", payload=b"x")
    results = await asyncio.gather(down.publish(STREAM, env), down.publish(STREAM, env), return_exceptions=True)
    assert all(isinstance(r, OSError | aioredis.ConnectionError) for r in results), results
    await down.redis.aclose()
