"""The SQL store on SQLite and on PostgreSQL: schema, unique keys, numbering, identities."""

import asyncio

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError

from ticket_service.store import admin
from ticket_service.store import tickets as store
from ticket_service.store.db import Database, migrate
from ticket_service.store.tables import messages


@pytest.fixture
async def db(database_url):
    database = Database(database_url)
    await migrate(database)
    yield database
    await database.dispose()


async def _tenant_with_account(db, slug="acme", address="help@acme.test"):
    async with db.write() as conn:
        tenant = await admin.create_tenant(conn, slug)
        account = await admin.add_account(conn, tenant, "email", address)
    return tenant, account


async def test_migrations_create_every_table_and_are_idempotent(database_url):
    database = Database(database_url)
    await asyncio.gather(migrate(database), migrate(database))  # concurrent starts of two roles
    await migrate(database)
    async with database.read() as conn:
        names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    await database.dispose()
    assert {"tenants", "channel_accounts", "customers", "identities", "tickets", "messages",
            "attachments", "agents", "api_keys", "ticket_threads", "alembic_version"} <= names


async def test_message_dedup_key_is_unique_per_tenant_and_channel(db):
    tenant, account = await _tenant_with_account(db)
    other, other_account = await _tenant_with_account(db, "globex", "help@globex.test")
    row = dict(channel="email", dedup_key="<a@b>", envelope_id="E" * 26, created_at=1)
    async with db.write() as conn:
        await conn.run_sync(store.add_message, tenant_id=tenant, account_id=account, **row)
        await conn.run_sync(store.add_message, tenant_id=other, account_id=other_account, **row)  # other tenant: fine
        await conn.run_sync(store.add_message, tenant_id=tenant, account_id=account, **{**row, "channel": "sdk"})
    with pytest.raises(IntegrityError):
        async with db.write() as conn:
            await conn.run_sync(store.add_message, tenant_id=tenant, account_id=account, **row)
    async with db.read() as conn:
        count = len((await conn.execute(select(messages.c.id))).all())
        found = await conn.run_sync(store.find_message, tenant, "email", "<a@b>")
    assert count == 3 and found.envelope_id == "E" * 26


async def test_ticket_numbers_count_per_tenant(db):
    a, acc_a = await _tenant_with_account(db)
    b, acc_b = await _tenant_with_account(db, "globex", "help@globex.test")
    numbers = []
    async with db.write() as conn:
        cust_a = await conn.run_sync(store.resolve_customer, a, "email", "", "x@y.z", "X", 1)
        cust_b = await conn.run_sync(store.resolve_customer, b, "email", "", "x@y.z", "X", 1)
        for tenant, account, cust in [(a, acc_a, cust_a), (a, acc_a, cust_a), (b, acc_b, cust_b), (a, acc_a, cust_a)]:
            _, number = await conn.run_sync(store.create_ticket, tenant_id=tenant, account_id=account, customer_id=cust.id, status="new",
                channel="email", subject="s", priority=0, now=1,
            )
            numbers.append(number)
    assert numbers == [1, 2, 1, 3]
    assert cust_a.id != cust_b.id  # the same address is a different customer in another tenant


async def test_identity_resolves_to_one_customer_within_scope(db):
    tenant, _ = await _tenant_with_account(db)
    async with db.write() as conn:
        first = await conn.run_sync(store.resolve_customer, tenant, "wechat", "acct1", "openid-1", "Li", 1)
        again = await conn.run_sync(store.resolve_customer, tenant, "wechat", "acct1", "openid-1", "Li", 2)
        other_scope = await conn.run_sync(store.resolve_customer, tenant, "wechat", "acct2", "openid-1", "Li", 3)
    assert first.id == again.id != other_scope.id and first.vip_tier == 0


async def test_thread_keys_lead_to_the_newest_ticket_and_repoint(db):
    tenant, account = await _tenant_with_account(db)
    async with db.write() as conn:
        cust = await conn.run_sync(store.resolve_customer, tenant, "email", "", "c@d.e", "", 1)
        common = dict(tenant_id=tenant, account_id=account, customer_id=cust.id, status="new",
                      channel="email", subject="s", priority=0, now=1)
        old, _ = await conn.run_sync(store.create_ticket, **common)
        await conn.run_sync(store.bind_thread_keys, tenant, account, old, ["<root@x>", "<r1@x>"], 1)
        new, _ = await conn.run_sync(store.create_ticket, **common)
        await conn.run_sync(store.bind_thread_keys, tenant, account, new, ["<r2@x>"], 2)
        assert (await conn.run_sync(store.ticket_for_keys, tenant, account, ["<root@x>", "<r2@x>"])).id == new
        assert (await conn.run_sync(store.ticket_for_keys, tenant, account, ["<r1@x>"])).id == old
        await conn.run_sync(store.bind_thread_keys, tenant, account, new, ["<root@x>", "<r3@x>"], 3, repoint=True)
        assert (await conn.run_sync(store.ticket_for_keys, tenant, account, ["<root@x>"])).id == new
        assert (await conn.run_sync(store.ticket_for_keys, tenant, account, ["<r1@x>"])).id == old
        assert await conn.run_sync(store.ticket_for_keys, tenant, account + 99, ["<root@x>"]) is None


async def test_api_keys_are_stored_hashed(db):
    tenant, _ = await _tenant_with_account(db)
    async with db.write() as conn:
        key = await admin.create_api_key(conn, tenant)
    async with db.read() as conn:
        stored = (await conn.execute(select(admin.api_keys.c.key_hash, admin.api_keys.c.prefix))).one()
        assert await admin.tenant_for_key(conn, key) == tenant
        assert await admin.tenant_for_key(conn, key + "x") is None
    assert key.startswith("sb_") and stored.key_hash == admin.hash_key(key) and key not in stored
