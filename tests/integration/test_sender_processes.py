"""Sender processes under SIGKILL: a burst of 500 replies, the sender killed mid-burst, each sent once.

The email sender writes to the outbox Maildir (no relay set), which keeps one file per
Message-ID: a reply a killed sender may have sent is sent again with the same handle, and
lands once.
"""

import email
import signal
import subprocess
import sys

import pytest
from sqlalchemy import func, select
from support import SUPPORT, make_mail, query, role_env, wait_for

from core import keys
from core.envelope import Envelope
from core.ids import now_ms
from ticket_service.store import admin
from ticket_service.store.db import Database, migrate
from ticket_service.store.replies import Draft, store_reply
from ticket_service.store.tables import outbox, tickets

SWITCHBOARD = [sys.executable, "-m", "ops.cli"]
SECRET = "sender-kill-secret"
REPLIES = 500


@pytest.fixture
async def burst(database_url, redis_url, tmp_path):
    """One email ticket and 500 replies queued on it (the API's own store call); returns the env."""
    import redis.asyncio as aioredis

    from core.blobs import BlobStore
    from core.bus import Bus
    from core.settings import load
    from normalizer.worker import Normalizer

    db = Database(database_url)
    await migrate(db)
    async with db.write() as conn:
        tenant = await admin.create_tenant(conn, "acme")
        account = await admin.add_account(conn, tenant, "email", SUPPORT)
    client = aioredis.Redis.from_url(redis_url)
    blobs = BlobStore(tmp_path / "blobs")
    await Bus(client, blobs, 1 << 20).publish(keys.ingest_stream("email"), Envelope(
        tenant="acme", channel="email", account=str(account), payload=make_mail()[0]))
    settings = load(env={}).replace(data_dir=tmp_path, block_ms=50)
    await Normalizer(Bus(client, blobs, 1 << 20), settings, db, blobs).run(drain=True)
    async with db.read() as conn:
        ticket = (await conn.execute(select(tickets.c.id))).scalar_one()
    for n in range(REPLIES):
        await db.run_write(store_reply, tenant, ticket, Draft(kind="reply", text=f"answer {n}"), SECRET, now_ms())
    await client.aclose()
    await db.dispose()
    return role_env(tmp_path, redis_url, database_url, secret_key=SECRET, visibility_timeout_ms=1500,
                    reclaim_interval_ms=200, block_ms=100, batch_size=16, demo="false")


def _sent(database_url: str) -> int:
    return query(database_url, select(func.count()).select_from(outbox).where(outbox.c.status == "sent"))[0][0]


def _sender(env: dict) -> subprocess.Popen:
    return subprocess.Popen([*SWITCHBOARD, "sender"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_sigkill_of_a_sender_mid_burst_sends_each_reply_exactly_once(burst, database_url, tmp_path):
    # Kill one sender after a first part of the burst went out; a second one finishes it.
    first = _sender(burst)
    try:
        wait_for(lambda: _sent(database_url) >= 50, timeout=60, what="a first part of the burst sent")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        killed_at = _sent(database_url)
        second = _sender(burst)
        try:
            wait_for(lambda: _sent(database_url) == REPLIES, timeout=100, what="every reply sent")
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(20)
    finally:
        if first.poll() is None:
            first.kill()
    assert killed_at < REPLIES  # the kill landed inside the burst
    rows = query(database_url, select(outbox.c.handle, outbox.c.status, outbox.c.attempts))
    files = sorted((tmp_path / "outbox" / "new").iterdir())
    ids = [email.message_from_bytes(f.read_bytes())["Message-ID"] for f in files]
    assert len(files) == REPLIES and len(set(ids)) == REPLIES
    assert set(ids) == {r.handle for r in rows}
    assert {r.status for r in rows} == {"sent"} and all(r.attempts >= 1 for r in rows)
