"""Switchboard on a real Redis Cluster (3 masters, 3 replicas): the whole inbound path and the
commands that touch several keys, SCAN over every master, leases and heartbeats."""

from __future__ import annotations

import asyncio

import pytest
from cluster_support import cluster_system
from redis_cluster import RedisClusterNodes
from support import make_mail
from wechat_support import text_message

from core import keys
from core.envelope import FIELD
from core.lease import Lease
from core.metrics import stream_names
from ops.healthcheck import check
from ops.streams import dead_replay


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory):
    nodes = RedisClusterNodes(tmp_path_factory.mktemp("redis-cluster")).start()
    yield nodes
    nodes.stop()


@pytest.fixture
async def system(redis_cluster, sqlite_url, tmp_path):
    async with cluster_system(redis_cluster.url, sqlite_url, tmp_path) as s:
        yield s


async def test_mail_wechat_and_a_form_become_assigned_tickets_through_the_cluster(system, redis_cluster):
    # The ingest streams sit on several masters: the normalizer reads each slot on its own.
    assert len({redis_cluster.master_of(keys.ingest_stream(c)) for c in ("email", "sms")}) == 2
    raw, _ = make_mail()
    assert await asyncio.to_thread(system.send_mail, raw) == {}
    assert await system.wechat().post(text_message("我的订单还没到", msgid=6200000000000000777)) == (200, "success")
    status, body = await system.post_form("Where is order 1042?", "submission-0001")
    assert (status, body["status"]) == (202, "accepted")
    await system.redis.xadd(keys.ingest_stream("email"), {FIELD: b"\xc1 not msgpack"})  # a poison pill

    await system.drain()

    rows = await system.tickets()
    assert sorted(t.channel for t in rows) == ["email", "webform", "wechat"]
    assert {t.assignee_id for t in rows} == {system.agent}
    got = {m.channel: (m.text.strip(), m.envelope_id) for m in await system.messages()}
    assert {c: text for c, (text, _) in got.items()} == {
        "email": "Hello, order 1042 has not arrived.", "wechat": "我的订单还没到", "webform": "Where is order 1042?"}
    [(_, dead)] = await system.redis.xrange(keys.dead_stream(keys.ingest_stream("email")))
    assert dead[b"source"] == b"ingest.email" and dead[b"error"].startswith(b"envelope:")
    pending = await system.redis.xpending(keys.ingest_stream("email"), "normalizer")
    assert pending["pending"] == 0
    async with system.gw.http.get(system.gw.url(f"/receipts/{body['receipt']}")) as resp:
        assert (resp.status, (await resp.json())["status"]) == (200, "ticket")


async def test_a_dead_letter_replays_onto_its_stream_across_slots(system):
    stream = keys.ingest_stream("email")
    await system.redis.xadd(stream, {FIELD: b"\xc1"})
    await system.drain()
    [(dead_id, _)] = await system.redis.xrange(keys.dead_stream(stream))
    [replayed] = await dead_replay(system.redis, stream, [dead_id.decode()])
    assert replayed["stream"] == stream and replayed["dead_id"] == dead_id.decode()
    assert await system.redis.xlen(keys.dead_stream(stream)) == 0
    [(new_id, fields)] = await system.redis.xrange(stream, min=replayed["new_id"])
    assert fields == {FIELD: b"\xc1"}


async def test_stream_names_scan_every_master(system, redis_cluster):
    names = [keys.ingest_stream("email"), keys.ingest_stream("sms"), keys.dead_stream(keys.outbound_stream("sms"))]
    assert len({redis_cluster.master_of(n) for n in names}) == 3
    for name in names:
        await system.redis.xadd(name, {FIELD: b"x"})
    assert await stream_names(system.redis) == sorted(names)


async def test_lease_scripts_and_heartbeats_work_on_the_cluster(system):
    one = Lease(system.redis, keys.router_tick_key(), "one", 10_000)
    two = Lease(system.redis, keys.router_tick_key(), "two", 10_000)
    assert (await one.acquire(), await two.acquire()) == (True, False)
    assert (await two.renew(), await one.renew()) == (False, True)
    assert (await two.release(), await one.release()) == (False, True)
    assert await one.holder() is None
    await system.drain()  # the workers beat as they run
    assert await asyncio.to_thread(check, "normalizer", system.settings)
    assert await asyncio.to_thread(check, "router", system.settings)
    assert not await asyncio.to_thread(check, "sender", system.settings)
