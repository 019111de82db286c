"""``python -m ops.chaos`` (``make chaos``, ``make chaos-pg``): faults under steady load, then prove nothing was lost.

Every role runs as its own process (smtp, gateway, two normalizers, a router) on Redis with
AOF and SQLite (or ``DATABASE_URL``). While mail (SMTP, threaded conversations) and web-form
posts flow in, a random role process is SIGKILLed and restarted every fraction of a second,
Redis is shut down and restarted once, and the database is made unavailable for writes
once (an exclusive lock held by another connection). On PostgreSQL (``--postgres``: a
throwaway cluster for the run, ``make chaos-pg``; or a PostgreSQL ``DATABASE_URL``) every
role's session is also ended with ``pg_terminate_backend`` a few times, and a cluster of the
run's own is restarted with ``pg_ctl restart -m fast`` once (``ops.pgfaults``). Then the load
stops, the system drains, and the invariants are checked:

* every accepted input (SMTP 250, HTTP 202) is exactly one message;
* every email conversation is exactly one ticket;
* every ticket is assigned or waiting in the routing queue, and no agent is over capacity;
* the dead-letter streams are empty;
* every role process still runs, but for the ones the run killed itself.

Exit status 0 when all hold; the summary is printed either way.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import random
import signal
import smtplib
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from email.message import EmailMessage

import redis
from sqlalchemy import func, select, text

from connectors.registry import capacity_classes
from core.channel import class_of
from core.logging import configure
from ops.bench.harness import SUPPORT, System, free_port
from ops.pgcluster import Cluster
from ops.pgfaults import PostgresFaults
from ticket_service.store import admin
from ticket_service.store import agents as agents_store
from ticket_service.store.db import Database
from ticket_service.store.tables import agents, messages, routing_queue, tickets

WORKERS = ("normalizer", "normalizer", "router")
EDGES = ("smtp", "gateway")
CAPACITY = 500
WECHAT_TOKEN = "chaos-token"
APP_SECRET = "chaos-secret"
_CLASS = capacity_classes()


class Load:
    """Steady mixed load — mail in conversations over SMTP, web forms, WeChat pushes, SDK
    messages and call records over HTTP — remembering each input that was accepted."""

    def __init__(self, smtp_port: int, http_port: int, conversations: int, seed: int) -> None:
        self.smtp_port, self.http_port = smtp_port, http_port
        self.rng = random.Random(seed)
        self.roots = [f"chaos-root-{i}-{uuid.uuid4().hex[:8]}@example.cn" for i in range(conversations)]
        self.started: set[str] = set()
        self.accepted_mail: dict[str, str] = {}  # Message-ID -> its conversation's root
        self.accepted: dict[str, set[str]] = {c: set() for c in ("webform", "wechat", "sdk", "voice")}
        self.refused = Counter()
        self.stop = threading.Event()

    def mail_once(self) -> None:
        root = self.rng.choice(self.roots)
        msg = EmailMessage()
        msg["From"] = f"customer-{self.roots.index(root)}@example.cn"
        msg["To"] = SUPPORT
        if root not in self.started:
            msgid, msg["Subject"] = root, "order question"
        else:
            msgid = f"chaos-reply-{uuid.uuid4().hex}@example.cn"
            msg["Subject"], msg["In-Reply-To"], msg["References"] = "Re: order question", f"<{root}>", f"<{root}>"
        msg["Message-ID"] = f"<{msgid}>"
        msg.set_content("Where is my order?")
        try:
            with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=10) as client:
                client.send_message(msg)
        except (OSError, smtplib.SMTPException) as exc:
            self.refused[f"smtp:{type(exc).__name__}"] += 1
            return
        self.started.add(root)  # a reply only once its root was accepted
        self.accepted_mail[msgid] = root

    def _post(self, channel: str, key: str, path: str, body: bytes, headers: dict, ok: int) -> None:
        req = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}", data=body, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                if resp.status == ok:
                    self.accepted[channel].add(key)
                    return
                self.refused[f"{channel}:{resp.status}"] += 1
        except (OSError, urllib.error.HTTPError) as exc:
            self.refused[f"{channel}:{getattr(exc, 'code', None) or type(exc).__name__}"] += 1

    def form_once(self) -> None:
        token = uuid.uuid4().hex
        body = json.dumps({"message": "My parcel is late", "email": f"{token[:8]}@example.cn",
                           "submission_id": token}).encode()
        self._post("webform", token, "/forms/contact", body, {"Content-Type": "application/json"}, 202)

    def wechat_once(self) -> None:
        msgid, ts, nonce = str(self.rng.getrandbits(62)), str(int(time.time())), uuid.uuid4().hex[:8]
        signature = hashlib.sha1("".join(sorted([WECHAT_TOKEN, ts, nonce])).encode()).hexdigest()
        body = (f"<xml><ToUserName>gh_chaos</ToUserName><FromUserName>o-fan-{self.rng.randrange(20)}</FromUserName>"
                f"<CreateTime>{ts}</CreateTime><MsgType>text</MsgType><Content>我的订单还没到</Content>"
                f"<MsgId>{msgid}</MsgId></xml>").encode()
        self._post("wechat", msgid, f"/wechat/chaos-wx?signature={signature}&timestamp={ts}&nonce={nonce}", body,
                   {"Content-Type": "text/xml"}, 200)

    def _signed(self, body: bytes) -> dict:
        ts = str(int(time.time()))
        sig = hmac.new(APP_SECRET.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        return {"X-SB-Timestamp": ts, "X-SB-Signature": sig, "Content-Type": "application/json"}

    def sdk_once(self) -> None:
        client_id, user = str(uuid.uuid4()), self.rng.randrange(20)
        body = json.dumps({"id": client_id, "conversation": f"c-{user}", "user": {"id": f"u-{user}"},
                           "text": "Hello from the app"}).encode()
        self._post("sdk", client_id, "/sdk/v1/apps/chaos-app/messages", body, self._signed(body), 202)

    def call_once(self) -> None:
        call = f"chaos-{uuid.uuid4().hex}"
        body = json.dumps({"records": [{"id": call, "status": self.rng.choice(["completed", "missed"]),
                                        "from": f"+86 138 0013 80{self.rng.randrange(20):02d}",
                                        "to": "4008001234"}]}).encode()
        self._post("voice", call, "/voice/chaos-cc/records", body, self._signed(body), 202)

    def run(self) -> None:
        senders = [self.mail_once] * 5 + [self.form_once, self.wechat_once, self.sdk_once, self.call_once] * 2
        while not self.stop.is_set():
            self.rng.choice(senders)()


def _lock_database(url: str, seconds: float) -> None:
    """Hold the write lock for ``seconds``: every writer waits (SQLite) or blocks (PostgreSQL)."""
    async def hold() -> None:
        db = Database(url)
        try:
            async with db.write() as conn:
                if db.is_sqlite:
                    await conn.execute(text("DELETE FROM messages WHERE id < 0"))  # take the write lock
                else:
                    await conn.execute(text("LOCK TABLE messages, tickets IN ACCESS EXCLUSIVE MODE"))
                await asyncio.sleep(seconds)
        finally:
            await db.dispose()

    asyncio.run(hold())


async def _setup(system: System) -> None:
    db = Database(system.database_url)
    async with db.write() as conn:
        tenant = await admin.tenant_id(conn, "bench")
        await admin.add_account(conn, tenant, "webform", "contact", {"rate_per_ip": 10**6, "rate_per_form": 10**6})
        await admin.add_account(conn, tenant, "wechat", "chaos-wx", {"token": WECHAT_TOKEN, "mode": "plaintext"})
        await admin.add_account(conn, tenant, "sdk", "chaos-app", {"secret": APP_SECRET})
        await admin.add_account(conn, tenant, "voice", "chaos-cc", {"secret": APP_SECRET, "region": "CN"})
        for i in range(4):
            await conn.run_sync(agents_store.create_agent, tenant, f"agent {i}", f"agent{i}@example.cn", status="online",
                                     capacity={"email": CAPACITY, "chat": CAPACITY, "voice": CAPACITY})
    await db.dispose()


async def _check(system: System, load: Load) -> dict:
    db = Database(system.database_url)
    async with db.read() as conn:
        rows = (await conn.execute(select(messages.c.dedup_key, messages.c.ticket_id, messages.c.channel))).all()
        open_unassigned = (await conn.execute(
            select(func.count()).select_from(tickets)
            .where(tickets.c.assignee_id.is_(None), tickets.c.status.not_in(("solved", "closed")),
                   tickets.c.id.not_in(select(routing_queue.c.ticket_id))))).scalar_one()
        over = (await conn.execute(select(func.count()).select_from(agents).where(
            (agents.c.load_email > agents.c.cap_email) | (agents.c.load_chat > agents.c.cap_chat)
            | (agents.c.load_voice > agents.c.cap_voice)))).scalar_one()
        # What agents actually hold, per channel class, counted from the tickets themselves.
        held = Counter((a, class_of(_CLASS, ch)) for a, ch in (await conn.execute(
            select(tickets.c.assignee_id, tickets.c.channel).where(
                tickets.c.assignee_id.is_not(None), tickets.c.status.not_in(("solved", "closed"))))).all())
    await db.dispose()
    keys = Counter(k for k, _, _ in rows)
    ticket_of = {k: t for k, t, _ in rows}
    lost = {"email": sum(1 for m in load.accepted_mail if keys[m] == 0)}
    for channel, ids in load.accepted.items():
        # Push channels' keys end in the id the sender chose: token, MsgId, client uuid, call id.
        stored = Counter(k.rsplit(":", 1)[1] for k, _, ch in rows if ch == channel)
        lost[channel] = sum(1 for i in ids if stored[i] == 0)
    duplicates = sum(n - 1 for n in keys.values() if n > 1)
    conversations: dict[str, set] = {}
    for msgid, root in load.accepted_mail.items():
        if msgid in ticket_of:
            conversations.setdefault(root, set()).add(ticket_of[msgid])
    split = [r for r, t in conversations.items() if len(t) != 1]
    client = redis.Redis.from_url(system.redis_url)
    dead = {k.decode(): client.xlen(k) for k in client.scan_iter(match="dead.*", _type="stream")}
    client.close()
    return {
        "accepted": {"email": len(load.accepted_mail), **{c: len(i) for c, i in load.accepted.items()}},
        "stored_messages": len(rows), "lost": sum(lost.values()), "lost_by_channel": lost,
        "duplicates": duplicates,
        "conversations": len(conversations), "conversations_split": len(split),
        "tickets_neither_assigned_nor_queued": open_unassigned, "agents_over_capacity": over,
        "max_held_per_agent_and_class": max(held.values(), default=0), "dead_letters": sum(dead.values()),
        "refused_at_ingress": dict(load.refused),
    }


def _drained(system: System, load: Load) -> bool:
    """Nothing pending or undelivered on any stream, and every accepted input stored."""
    client = redis.Redis.from_url(system.redis_url)
    try:
        for key in [*client.scan_iter(match="ingest.*", _type="stream"), b"ticket.events"]:
            last = client.xinfo_stream(key)["last-generated-id"]
            if any(g["pending"] or g["last-delivered-id"] != last for g in client.xinfo_groups(key)):
                return False
    except redis.RedisError:
        return False
    finally:
        client.close()
    db_count = asyncio.run(_count(system.database_url))
    return db_count >= len(load.accepted_mail) + sum(len(i) for i in load.accepted.values())


async def _count(url: str) -> int:
    db = Database(url)
    try:
        async with db.read() as conn:
            return (await conn.execute(select(func.count(messages.c.id)))).scalar_one()
    finally:
        await db.dispose()


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m ops.chaos", description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=60.0, help="about how long the load and the faults run")
    p.add_argument("--kills", type=int, default=40, help="role processes SIGKILLed, spread over --seconds")
    p.add_argument("--db-outage", type=float, default=20.0, help="seconds the database refuses writes")
    p.add_argument("--conversations", type=int, default=60)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--postgres", action="store_true",
                   help="run on a throwaway PostgreSQL cluster (initdb + pg_ctl) started for the run and "
                        "removed after it, and restart it once under load")
    p.add_argument("--pg-terminations", type=int, default=3,
                   help="on PostgreSQL: times every role's session is ended with pg_terminate_backend")
    return p.parse_args(argv)


def _restart_redis(system: System) -> None:
    try:
        redis.Redis.from_url(system.redis_url).shutdown()  # AOF flushed on shutdown
    except redis.ConnectionError:
        pass
    system.redis.wait(30)
    time.sleep(1)
    system.start_redis()


def _run(args: argparse.Namespace, database_url: str | None, cluster: Cluster | None) -> dict:
    """Load, faults, drain; the invariants' figures."""
    rng = random.Random(args.seed)
    system = System(database_url)
    http_port = free_port()
    procs: dict[int, tuple[str, subprocess.Popen]] = {}
    settings = {"visibility_timeout_ms": 2000, "reclaim_interval_ms": 500, "heartbeat_interval_ms": 500,
                "http_port": http_port}

    def start(role: str) -> None:
        proc = system.role(role, **settings)
        procs[proc.pid] = (role, proc)

    kills = 0
    try:
        asyncio.run(system.start())
        asyncio.run(_setup(system))
        pg = None if system.scratch is None else PostgresFaults(system.database_url, cluster, args.kills,
                                                                 args.pg_terminations)
        for role in (*EDGES, *WORKERS):
            start(role)
        system.wait_port(system.smtp_port)
        system.wait_port(http_port)
        load = Load(system.smtp_port, http_port, args.conversations, args.seed)
        threads = [threading.Thread(target=load.run, daemon=True) for _ in range(3)]
        for t in threads:
            t.start()
        began = time.monotonic()
        interval = args.seconds / max(args.kills, 1)
        redis_restarted = False
        locker = None
        while kills < args.kills:
            time.sleep(interval * rng.uniform(0.5, 1.5))
            pid = rng.choice([pid for pid, (role, _) in procs.items() if role in WORKERS or rng.random() < 0.3])
            role, proc = procs.pop(pid)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            start(role)
            if not redis_restarted and kills >= args.kills // 3:
                redis_restarted = True
                _restart_redis(system)
            if locker is None and kills >= args.kills // 2:
                locker = threading.Thread(target=_lock_database, args=(system.database_url, args.db_outage))
                locker.start()
            if pg is not None:
                pg.after_kill(kills, locker is not None and locker.is_alive())
        if locker:
            locker.join()
        if pg is not None:
            pg.finish()  # still under load
        load.stop.set()
        for t in threads:
            t.join(30)
        stopped = time.monotonic()
        while not _drained(system, load):
            if time.monotonic() - stopped > 300:
                break
            time.sleep(0.5)
        recovery = time.monotonic() - stopped
        summary = asyncio.run(_check(system, load))
        # A role that ended by itself (not one of our kills) did not survive a fault.
        summary["roles_exited_by_themselves"] = sorted(role for role, proc in procs.values() if proc.poll() is not None)
        summary.update(kills=kills, redis_restarts=int(redis_restarted), db_outage_s=args.db_outage,
                       **(pg.summary() if pg is not None else {}),
                       load_seconds=round(stopped - began, 1), drain_s=round(recovery, 1))
    finally:
        system.stop()
    return summary


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    configure("warning", "json")
    cluster = None
    database_url = os.environ.get("DATABASE_URL")
    if args.postgres:
        cluster = Cluster()
        cluster.start()
        # The server's own database: the run makes a scratch database beside it (System).
        database_url = f"postgresql://postgres@{cluster.host}:{cluster.port}/postgres"
    try:
        summary = _run(args, database_url, cluster)
    finally:
        if cluster is not None:
            cluster.remove()
    ok = (summary["lost"] == 0 and summary["duplicates"] == 0 and summary["conversations_split"] == 0
          and summary["tickets_neither_assigned_nor_queued"] == 0 and summary["agents_over_capacity"] == 0
          and summary["max_held_per_agent_and_class"] <= CAPACITY and summary["dead_letters"] == 0
          and not summary["roles_exited_by_themselves"])
    width = max(len(k) for k in summary)
    for key, value in summary.items():
        print(f"{key.ljust(width)}  {value}")
    print("chaos: all invariants hold" if ok else "chaos: INVARIANT VIOLATED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
