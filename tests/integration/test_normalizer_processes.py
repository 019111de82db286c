"""Normalizer processes under faults: SIGKILL mid-batch, and two racing on one conversation set."""

import random
import signal
import subprocess
import sys

import pytest
import redis
from sqlalchemy import func, select
from support import SUPPORT, make_mail, query, role_env, wait_for

from core import keys
from core.envelope import Envelope
from ticket_service.store import admin
from ticket_service.store.db import Database, migrate
from ticket_service.store.tables import messages, tickets

SWITCHBOARD = [sys.executable, "-m", "ops.cli"]


@pytest.fixture
async def mailbox(database_url, redis_url, tmp_path):
    """A migrated database with tenant acme and its mailbox; returns the account id."""
    db = Database(database_url)
    await migrate(db)
    async with db.write() as conn:
        tenant = await admin.create_tenant(conn, "acme")
        account = await admin.add_account(conn, tenant, "email", SUPPORT)
    await db.dispose()
    return account


def _count(database_url: str, column) -> int:
    return query(database_url, select(func.count(column)))[0][0]




def _publish(redis_url: str, account: int, raws: list[bytes]) -> None:
    client = redis.Redis.from_url(redis_url)
    pipe = client.pipeline(transaction=False)
    for raw in raws:
        env = Envelope(tenant="acme", channel="email", account=str(account), payload=raw)
        pipe.xadd(keys.ingest_stream("email"), {b"e": env.pack()})
    pipe.execute()


def _normalizer(env: dict, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([*SWITCHBOARD, "normalizer", *extra], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _conversations(count: int, per: int, seed: int) -> list[bytes]:
    """`count` conversations of `per` mails each, every reply referencing its root, shuffled."""
    mails = []
    for c in range(count):
        root = f"<root-{c}@example.cn>"
        mails.append(make_mail(subject=f"case {c}", msgid=root, sender=f"c{c}@example.cn")[0])
        for r in range(1, per):
            mails.append(make_mail(subject=f"Re: case {c}", refs=[root], sender=f"c{c}@example.cn",
                                   msgid=f"<reply-{c}-{r}@example.cn>")[0])
    random.Random(seed).shuffle(mails)
    return mails


def test_sigkill_mid_batch_loses_and_duplicates_nothing(mailbox, database_url, redis_url, tmp_path):
    # Kill -9 while entries are read but not all acked; the restart reclaims them.
    account = mailbox
    _publish(redis_url, account, _conversations(100, 4, seed=1))
    env = role_env(tmp_path, redis_url, database_url, batch_size=50, visibility_timeout_ms=1000)
    proc = _normalizer(env)
    wait_for(lambda: _count(database_url, messages.c.id) >= 20, timeout=60, what="first messages stored")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stored_at_kill = _count(database_url, messages.c.id)
    assert stored_at_kill < 400, "the kill must land mid-stream for this test to mean anything"
    drained = subprocess.run([*SWITCHBOARD, "normalizer", "--drain"], env=env, timeout=120,
                             capture_output=True)
    assert drained.returncode == 0, drained.stderr[-2000:]
    assert _count(database_url, messages.c.id) == 400
    assert query(database_url, select(func.count(func.distinct(messages.c.dedup_key)))) == [(400,)]
    assert _count(database_url, tickets.c.id) == 100
    client = redis.Redis.from_url(redis_url)
    assert client.xpending("ingest.email", "normalizer")["pending"] == 0
    assert client.xlen("dead.ingest.email") == 0


def test_two_normalizers_thread_interleaved_conversations_into_one_ticket_each(
    mailbox, database_url, redis_url, tmp_path
):
    # 200 mails of 20 conversations, shuffled, split between two racing processes. Both are
    # up (their heartbeats written, their reads about to block) before anything is published,
    # so neither drains the stream alone while the other is still starting.
    account = mailbox
    env = role_env(tmp_path, redis_url, database_url, batch_size=4)
    procs = [_normalizer(env), _normalizer(env)]
    client = redis.Redis.from_url(redis_url)
    try:
        wait_for(lambda: len(client.keys(keys.heartbeat_key("normalizer", "*"))) == 2, timeout=60,
                 what="both normalizers running")
        _publish(redis_url, account, _conversations(20, 10, seed=2))
        wait_for(lambda: _count(database_url, messages.c.id) == 200, timeout=90, what="200 messages")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        codes = [p.wait(30) for p in procs]
    assert codes == [0, 0]
    assert _count(database_url, tickets.c.id) == 20
    sizes = query(database_url, select(func.count(messages.c.id)).group_by(messages.c.ticket_id))
    assert sorted(n for (n,) in sizes) == [10] * 20
    consumers = client.xinfo_consumers("ingest.email", "normalizer")
    assert len(consumers) == 2 and all(c["pending"] == 0 for c in consumers)
    assert sum(1 for c in consumers if c["name"].startswith(b"normalizer-")) == 2
