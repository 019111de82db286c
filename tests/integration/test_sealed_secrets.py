"""Channel secrets given with a secret key are sealed at rest and opened only by the gateway."""

import hashlib
import hmac
import json
import time
import uuid

import pytest
import redis.asyncio as aioredis
from gateway_support import running_gateway
from sqlalchemy import select
from structlog.testing import capture_logs

from connectors.registry import secret_channels
from core.blobs import BlobStore
from core.bus import Bus
from ticket_service.store import admin
from ticket_service.store.db import Database, migrate
from ticket_service.store.directory import AccountDirectory
from ticket_service.store.tables import channel_accounts

KEY = "deployment-secret-key"
APP_SECRET = "app-secret-0d4e"
OPENS = secret_channels()


@pytest.fixture
async def sealed(sqlite_url, redis_url, tmp_path):
    db = Database(sqlite_url)
    await migrate(db)
    async with db.write() as conn:
        tenant = await admin.create_tenant(conn, "acme")
        await admin.add_account(conn, tenant, "sdk", "acme-ios", {"secret": APP_SECRET, "clock_skew_s": 300},
                                secret_key=KEY)
    client = aioredis.Redis.from_url(redis_url)
    yield db, Bus(client, BlobStore(tmp_path / "blobs"), 1 << 20), tenant
    await client.aclose()
    await db.dispose()


async def test_the_row_holds_no_secret_in_the_clear(sealed):
    db, _, _ = sealed
    async with db.read() as conn:
        row = (await conn.execute(select(channel_accounts).where(channel_accounts.c.address == "acme-ios"))).one()
    assert row.settings == {"clock_skew_s": 300}
    assert row.secret_enc and APP_SECRET not in row.secret_enc
    opened = await AccountDirectory(db, secret_key=KEY, opens=OPENS).by_address("sdk", "acme-ios")
    assert opened.settings == {"clock_skew_s": 300, "secret": APP_SECRET}
    closed = await AccountDirectory(db, opens=OPENS).by_address("sdk", "acme-ios")  # no key: stays sealed
    assert "secret" not in closed.settings
    wrong = await AccountDirectory(db, secret_key="another key", opens=OPENS).by_address("sdk", "acme-ios")
    assert "secret" not in wrong.settings


async def test_accounts_taken_sealed_are_neither_opened_nor_logged(sealed):
    # The normalizer's lookup (secrets=False) shares the directory but never opens secrets.
    db, _, _ = sealed
    directory = AccountDirectory(db, secret_key="", opens=OPENS)
    with capture_logs() as logs:
        account = await directory.by_address("sdk", "acme-ios", secrets=False)
        again = await directory.by_id(account.id, secrets=False)
    assert account.settings == again.settings == {"clock_skew_s": 300}
    assert account.sealed and APP_SECRET not in account.sealed
    assert [e["event"] for e in logs] == []
    with capture_logs() as logs:
        await directory.by_address("sdk", "acme-ios")  # asked to open without the key: our fault, logged
    assert [e["event"] for e in logs] == ["account.secrets_closed"]


def _signed(body: bytes) -> dict:
    ts = str(int(time.time()))
    sig = hmac.new(APP_SECRET.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"X-SB-Timestamp": ts, "X-SB-Signature": sig, "Content-Type": "application/json"}


@pytest.mark.parametrize(("key", "status"), [(KEY, 202), ("", 401), ("another key", 401)])
async def test_gateway_verifies_with_the_opened_secret_only(sealed, key, status):
    db, bus, tenant = sealed
    body = json.dumps({"id": str(uuid.uuid4()), "conversation": "c-1", "user": {"id": "u-1"},
                       "text": "Hello"}).encode()
    async with running_gateway(bus, db, tenant, secret_key=key) as gw:
        async with gw.http.post(gw.url("/sdk/v1/apps/acme-ios/messages"), data=body, headers=_signed(body)) as r:
            assert r.status == status, await r.text()
        assert await gw.xlen("sdk") == (1 if status == 202 else 0)
