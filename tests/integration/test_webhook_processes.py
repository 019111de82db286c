"""Webhooks with the real `switchboard` processes: set up with the CLI, delivered by a
`switchboard rules` process that is killed mid-delivery; the next one retries it. And the
`switchboard webhook` commands."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys

from sqlalchemy import select
from support import make_mail, role_env
from webhook_support import SECRET_KEY, Receiver, valid_signature, wait_until

from core import keys
from ticket_service.store import admin, deliveries
from ticket_service.store.db import Database, migrate
from ticket_service.store.tables import tenants, webhook_deliveries

SWITCHBOARD = [sys.executable, "-m", "ops.cli"]


def _cli(env: dict, *args: str) -> tuple[int, object]:
    done = subprocess.run([*SWITCHBOARD, "webhook", *args], env=env, capture_output=True, text=True, timeout=60)
    return done.returncode, json.loads(done.stdout) if done.returncode == 0 else done.stderr.strip()


def _rules(env: dict, folder) -> subprocess.Popen:
    """A `switchboard rules` process; its log (stderr) goes to <folder>/rules-<n>.log."""
    with open(folder / f"rules-{len(list(folder.glob('rules-*.log')))}.log", "wb") as log:
        return subprocess.Popen([*SWITCHBOARD, "rules"], env=env, stdout=subprocess.DEVNULL, stderr=log)


async def _mail(system, subject: str) -> None:
    await system.publish(make_mail(subject=subject)[0])
    await system.drain()


async def test_a_rules_process_killed_mid_delivery_leaves_it_to_the_next_and_no_event_is_lost(system, tmp_path):
    # A 1 s timeout gives a 7 s claim: the killed process's attempt comes due again after it.
    env = role_env(tmp_path, system.settings.redis_url, system.settings.database_url, secret_key=SECRET_KEY,
                   webhook_timeout_s=1, webhook_retry_base_s=0.05, webhook_poll_ms=50, webhook_cache_s=0,
                   block_ms=50, demo="false")
    receiver = await Receiver(hold=asyncio.Event()).start()
    first = second = None
    try:
        assert (await asyncio.to_thread(_cli, env, "allow-private", "yes", "--tenant", "acme"))[0] == 0
        code, hook = await asyncio.to_thread(_cli, env, "add", receiver.url, "--tenant", "acme",
                                             "--events", "ticket.created")
        assert code == 0 and hook["events"] == ["ticket.created"] and hook["secret"].startswith("whsec_")
        await _mail(system, "first")
        first = _rules(env, tmp_path)
        await wait_until(lambda: len(receiver.requests) == 1, "the first attempt to reach the receiver")
        os.kill(first.pid, signal.SIGKILL)  # mid-delivery: the receiver has not answered
        first.wait(10)
        await _mail(system, "second")  # while no rules process runs
        receiver.hold.set()
        second = _rules(env, tmp_path)

        async def delivered():
            async with system.db.read() as conn:
                rows = (await conn.execute(select(webhook_deliveries.c.status))).all()
            return [r.status for r in rows] == ["delivered", "delivered"]
        await wait_until(delivered, "both deliveries delivered", limit=60)
        async with system.db.read() as conn:
            rows = (await conn.execute(select(webhook_deliveries).order_by(webhook_deliveries.c.id.desc()))).all()
        pending = await system.bus.redis.xpending(keys.TICKET_EVENTS, "rules")
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
        await receiver.close()
    assert second.returncode == 0
    # Both events reached the receiver; the cut-short one twice, under one delivery id.
    newest, oldest = rows
    assert (oldest.attempts, newest.attempts) == (2, 1)
    ids = [r.headers["X-Switchboard-Delivery"] for r in receiver.requests]
    assert sorted(ids) == sorted([str(oldest.id), str(oldest.id), str(newest.id)])
    assert all(valid_signature(hook["secret"], r) for r in receiver.requests)
    assert {json.loads(r.body)["ticket"]["subject"] for r in receiver.requests} == {"first", "second"}
    assert pending["pending"] == 0


def test_the_webhook_commands_add_list_show_deliveries_replay_and_remove(database_url, tmp_path):
    # Each command in its own process, as people run it (in this process the CLI would point the
    # logging of every later test at this test's captured, then closed, stderr).
    env = role_env(tmp_path, None, database_url, secret_key=SECRET_KEY)

    def cli(*args: str) -> tuple[int, object]:
        return _cli(env, *args)

    async def seed() -> None:
        db = Database(database_url)
        await migrate(db)
        async with db.write() as conn:
            await admin.create_tenant(conn, "acme")
        await db.dispose()
    asyncio.run(seed())
    code, refused = cli("add", "http://127.0.0.1:9/hook", "--tenant", "acme")
    assert code == 1 and refused == ("switchboard: url resolves to 127.0.0.1 is a loopback address; only public "
                                     "addresses are allowed unless the tenant sets webhooks_allow_private")
    assert cli("allow-private", "yes", "--tenant", "acme") == (0, {"tenant": "acme", "webhooks_allow_private": True})
    code, hook = cli("add", "http://127.0.0.1:9/hook", "--tenant", "acme", "--events", "ticket.created,sla.breached")
    assert code == 0 and hook["events"] == ["ticket.created", "sla.breached"] and hook["secret"].startswith("whsec_")
    code, listed = cli("list", "--tenant", "acme")
    assert code == 0 and listed == [{k: v for k, v in hook.items() if k != "secret"}]

    async def enqueue() -> int:
        db = Database(database_url)
        tenant = (await db.run_read(lambda c: c.execute(select(tenants.c.id)).scalar()))
        found = await db.run_write(deliveries.enqueue, tenant, hook["id"], "sla.breached", {"metric": "first_reply"})
        await db.dispose()
        return found
    delivery = asyncio.run(enqueue())
    code, rows = cli("deliveries", str(hook["id"]), "--tenant", "acme", "--status", "pending")
    assert code == 0 and [(r["id"], r["event"], r["attempts"]) for r in rows] == [(delivery, "sla.breached", 0)]
    code, replayed = cli("replay", str(hook["id"]), str(delivery), "--tenant", "acme")
    assert code == 0 and (replayed["id"], replayed["status"]) == (delivery, "pending")
    assert cli("replay", str(hook["id"]), "999", "--tenant", "acme") == (
        1, f"switchboard: no delivery 999 of webhook {hook['id']}")
    assert cli("remove", str(hook["id"]), "--tenant", "acme") == (0, {"removed": hook["id"]})
    assert cli("deliveries", str(hook["id"]), "--tenant", "acme") == (
        1, f"switchboard: no webhook {hook['id']} of tenant 'acme'")
