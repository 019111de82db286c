"""Operating the bus: metrics after traffic, readiness, and the `switchboard ops` commands."""

import asyncio
import json
import signal
import smtplib
import subprocess
import sys

import pytest
import redis
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import REGISTRY
from sqlalchemy import func, select
from support import SUPPORT, free_port, make_mail, query, role_env, wait_for

from connectors.email import smtp
from core import keys
from core.blobs import BlobStore
from core.bus import Bus
from core.envelope import Envelope
from core.settings import load
from normalizer.worker import Normalizer
from ops.health import Health, setup_ops
from ops.healthcheck import check
from ticket_service.store import admin
from ticket_service.store.db import Database, migrate
from ticket_service.store.directory import AccountDirectory
from ticket_service.store.tables import messages

SWITCHBOARD = [sys.executable, "-m", "ops.cli"]


@pytest.fixture
def database_url(sqlite_url):
    """These tests are about the bus; one database engine is enough."""
    return sqlite_url


def _value(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _ops(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*SWITCHBOARD, "ops", *args], env=env, capture_output=True, text=True, timeout=60)


def _ops_json(env: dict, *args: str):
    done = _ops(env, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def env(tmp_path, redis_url, database_url):
    return role_env(tmp_path / "data", redis_url, database_url)


async def _scrape(health: Health) -> tuple[str, TestClient]:
    app = web.Application()
    setup_ops(app, health)
    client = TestClient(TestServer(app))
    await client.start_server()
    async with client.get("/metrics") as resp:
        assert resp.status == 200
        body = await resp.text()
    await client.close()
    return body


async def test_metrics_follow_traffic(system):
    ok = _value("switchboard_handled_total", stage="normalizer", stream="ingest.email", outcome="ok")
    dead = _value("switchboard_dead_lettered_total", stage="normalizer", stream="ingest.email")
    latency = _value("switchboard_ingress_to_ticket_seconds_count")
    handle = _value("switchboard_handle_seconds_count", stage="normalizer")
    for i in range(3):
        await system.publish(make_mail(subject=f"case {i}")[0])
    await system.bus.redis.xadd("ingest.email", {b"e": b"\x93not an envelope"})
    await system.drain()

    assert _value("switchboard_handled_total", stage="normalizer", stream="ingest.email", outcome="ok") == ok + 3
    assert _value("switchboard_dead_lettered_total", stage="normalizer", stream="ingest.email") == dead + 1
    assert _value("switchboard_ingress_to_ticket_seconds_count") == latency + 3
    assert _value("switchboard_handle_seconds_count", stage="normalizer") == handle + 3

    body = await _scrape(Health(system.bus.redis, system.db))
    lines = set(body.splitlines())
    assert 'switchboard_stream_length{stream="ingest.email"} 4.0' in lines
    assert 'switchboard_stream_length{stream="ticket.events"} 3.0' in lines
    assert 'switchboard_group_pending{group="normalizer",stream="ingest.email"} 0.0' in lines
    assert 'switchboard_group_lag{group="normalizer",stream="ingest.email"} 0.0' in lines
    assert 'switchboard_dead_letters{stream="ingest.email"} 1.0' in lines


async def test_smtp_ingress_is_counted_by_outcome(sqlite_url, redis_url, tmp_path):
    db = Database(sqlite_url)
    await migrate(db)
    async with db.write() as conn:
        await admin.add_account(conn, await admin.create_tenant(conn, "acme"), "email", SUPPORT)
    client = aioredis.Redis.from_url(redis_url)
    port = free_port()
    server = await smtp.serve(Bus(client, BlobStore(tmp_path / "b"), 1 << 20), AccountDirectory(db),
                              "127.0.0.1", port, max_size=4096, hostname="mx.test")

    def count(outcome, reason=""):
        return _value("switchboard_ingress_messages_total", channel="email", outcome=outcome, reason=reason)

    before = {k: count(*k) for k in [("accepted",), ("rejected", "unknown_recipient"), ("rejected", "too_large")]}

    def send():
        raw = make_mail()[0].replace(b"\n", b"\r\n")
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
            c.sendmail("a@example.cn", [SUPPORT], raw)
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                c.sendmail("a@example.cn", ["nobody@acme.test"], raw)
            # SIZE is declared in MAIL FROM, so the refusal comes before DATA.
            with pytest.raises(smtplib.SMTPSenderRefused, match="exceeds fixed maximum message size"):
                c.sendmail("a@example.cn", [SUPPORT], raw + b"x" * 5000 + b"\r\n")

    try:
        await asyncio.to_thread(send)
    finally:
        server.close()
        await server.wait_closed()
        await client.aclose()
        await db.dispose()
    assert count("accepted") == before[("accepted",)] + 1
    assert count("rejected", "unknown_recipient") == before[("rejected", "unknown_recipient")] + 1
    assert count("rejected", "too_large") == before[("rejected", "too_large")] + 1


async def test_readiness_fails_while_redis_is_down_and_recovers(sqlite_url, tmp_path):
    from core.redis import redis_binary

    port = free_port()
    cmd = [redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path),
           "--save", "", "--appendonly", "no"]
    server = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.DEVNULL)
    client = aioredis.Redis(port=port, socket_connect_timeout=1, socket_timeout=1)
    db = Database(sqlite_url)
    await migrate(db)
    app = web.Application()
    setup_ops(app, Health(client, db))
    http = TestClient(TestServer(app))
    await http.start_server()

    async def ready() -> tuple[int, dict]:
        async with http.get("/readyz") as resp:
            return resp.status, await resp.json()

    async def until(status: int) -> dict:
        for _ in range(100):
            code, body = await ready()
            if code == status:
                return body
            await asyncio.sleep(0.1)
        raise AssertionError(f"/readyz never answered {status}: {body}")

    try:
        body = await until(200)
        assert body == {"status": "ready", "checks": {"redis": "ok", "database": "ok"}}
        server.terminate()
        await server.wait()
        body = await until(503)
        assert body["status"] == "unavailable" and body["checks"]["database"] == "ok"
        assert body["checks"]["redis"].startswith("unreachable")
        async with http.get("/healthz") as resp:  # alive, though not ready
            assert resp.status == 200
        server = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.DEVNULL)
        body = await until(200)
        assert body["checks"]["redis"] == "ok"
    finally:
        await http.close()
        if server.returncode is None:
            server.terminate()
            await server.wait()
        await client.aclose()
        await db.dispose()


async def test_readiness_reports_a_consumer_loop_that_does_not_tick(system):
    idle = Normalizer(system.bus, system.settings, system.db, system.bus.blobs)
    health = Health(system.bus.redis, system.db, workers=[idle])
    assert (await health.probe())["loop:normalizer"] == "not started"
    worker = Normalizer(system.bus, system.settings, system.db, system.bus.blobs)
    await worker.run(drain=True)
    health = Health(system.bus.redis, system.db, workers=[worker], stall_s=60)
    assert await health.probe() == {"redis": "ok", "database": "ok", "loop:normalizer": "ok"}
    health.stall_s = 0.0
    assert (await health.probe())["loop:normalizer"].startswith("stalled for")


async def test_dead_letter_replay_round_trip(system, env):
    # A mail for a mailbox that does not exist yet is dead-lettered ...
    missing = system.account + 1
    env_in = await system.publish(make_mail(subject="Lost and found")[0], account=missing)
    await system.drain()
    assert await system.tickets() == []
    [letter] = await asyncio.to_thread(_ops_json, env, "dead", "list")
    assert (letter["source"], letter["envelope_id"], letter["tenant"]) == ("ingest.email", env_in.id, "acme")
    assert f"no email account '{missing}'" in letter["error"]
    shown = await asyncio.to_thread(_ops_json, env, "dead", "show", "ingest.email", letter["id"])
    assert "Subject: Lost and found" in shown["payload_preview"]

    # ... the mailbox is added, the letter replayed, and the ticket appears.
    async with system.db.write() as conn:
        assert await admin.add_account(conn, system.tenant, "email", "lost@acme.test") == missing
    [replayed] = await asyncio.to_thread(_ops_json, env, "dead", "replay", "ingest.email", "--all")
    assert replayed["stream"] == "ingest.email"
    assert await system.bus.redis.xlen("dead.ingest.email") == 0
    await system.drain()
    [ticket] = await system.tickets()
    assert ticket.subject == "Lost and found"
    [message] = await system.messages()
    assert message.ticket_id == ticket.id


async def test_dead_drop_and_errors_name_the_problem(system, env):
    await system.bus.redis.xadd("ingest.email", {b"e": b"junk"})
    await system.drain()
    [letter] = await asyncio.to_thread(_ops_json, env, "dead", "list", "ingest.email")
    assert letter["envelope_id"] is None and "envelope" in letter["error"]
    missing = await asyncio.to_thread(_ops, env, "dead", "show", "ingest.email", "1-1")
    assert missing.returncode == 1 and "no dead letter 1-1 in dead.ingest.email" in missing.stderr
    nothing = await asyncio.to_thread(_ops, env, "dead", "drop", "ingest.email")
    assert nothing.returncode == 1 and "name dead letter ids, or --all" in nothing.stderr
    assert await asyncio.to_thread(_ops_json, env, "dead", "drop", "ingest.email", letter["id"]) == {"dropped": 1}
    assert await system.bus.redis.xlen("dead.ingest.email") == 0


async def test_streams_replay_and_trim(system, env):
    for i in range(5):
        await system.publish(make_mail(subject=f"case {i}")[0])
    await system.drain()
    data = await asyncio.to_thread(_ops_json, env, "streams")
    by_name = {s["stream"]: s for s in data}
    # Every stream of the bus is listed: the normalizer's group exists on each channel's ingest stream.
    assert {"ingest.email", "ticket.events"} <= set(by_name)
    assert all(n.startswith("ingest.") or n == "ticket.events" for n in by_name)
    [group] = by_name["ingest.email"]["groups"]
    assert (by_name["ingest.email"]["length"], group["group"], group["pending"], group["lag"]) == (5, "normalizer", 0, 0)
    assert by_name["ticket.events"]["length"] == 5
    table = await asyncio.to_thread(_ops, env, "streams")
    assert table.stdout.splitlines()[0].split() == ["STREAM", "LENGTH", "GROUP", "LAG", "PENDING", "CONSUMERS",
                                                    "OLDEST_PENDING_S"]

    # Replaying stored envelopes parses them again; dedup keeps every message once.
    assert await asyncio.to_thread(_ops_json, env, "replay", "ingest.email", "--from", "-") == {
        "stream": "ingest.email", "replayed": 5}
    await system.drain()
    assert len(await system.messages()) == 5 and len(await system.tickets()) == 5

    trimmed = await asyncio.to_thread(_ops_json, env, "trim", "ingest.email")
    assert trimmed == {"ingest.email": 10}
    assert await system.bus.redis.xlen("ingest.email") == 0


def _count_messages(database_url: str) -> int:
    return query(database_url, select(func.count(messages.c.id)))[0][0]


@pytest.fixture
async def mailbox(database_url):
    db = Database(database_url)
    await migrate(db)
    async with db.write() as conn:
        account = await admin.add_account(conn, await admin.create_tenant(conn, "acme"), "email", SUPPORT)
    await db.dispose()
    return account


def test_prune_hands_a_killed_consumers_entries_to_the_living(mailbox, database_url, redis_url, tmp_path):
    client = redis.Redis.from_url(redis_url)
    pipe = client.pipeline(transaction=False)
    for i in range(400):
        env = Envelope(tenant="acme", channel="email", account=str(mailbox),
                       payload=make_mail(subject=f"case {i}", msgid=f"<m{i}@example.cn>")[0])
        pipe.xadd(keys.ingest_stream("email"), {b"e": env.pack()})
    pipe.execute()
    # A visibility timeout this long means only prune can free the killed consumer's entries.
    env = role_env(tmp_path, redis_url, database_url, batch_size=100, heartbeat_interval_ms=200,
                   visibility_timeout_ms=600_000)
    proc = subprocess.Popen([*SWITCHBOARD, "normalizer"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)

    def busy():
        return _count_messages(database_url) >= 5 and client.xpending("ingest.email", "normalizer")["pending"]

    settings = load(env=env)
    wait_for(busy, timeout=60, what="the normalizer mid-batch")
    alive = check("normalizer", settings)  # its heartbeat is fresh
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    [dead] = client.xinfo_consumers("ingest.email", "normalizer")
    assert dead["pending"] > 0
    assert alive
    wait_for(lambda: not check("normalizer", settings), timeout=10, what="heartbeat expiry")
    assert _ops(env, "check", "normalizer").returncode == 1

    [pruned] = _ops_json(env, "consumers", "prune", "--idle-ms", "0")
    assert (pruned["consumer"], pruned["moved"]) == (dead["name"].decode(), dead["pending"])
    assert all(c["name"] != dead["name"] for c in client.xinfo_consumers("ingest.email", "normalizer"))

    drained = subprocess.run([*SWITCHBOARD, "normalizer", "--drain"], env=env, timeout=120, capture_output=True)
    assert drained.returncode == 0, drained.stderr[-2000:]
    assert _count_messages(database_url) == 400
    assert client.xpending("ingest.email", "normalizer")["pending"] == 0
    client.close()
