"""The bench's database wait sampler names what PostgreSQL's busy sessions wait on."""

import asyncio

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from ops.bench.harness import DbWaits, _postgres_parent, server_cpu_seconds

pytestmark = pytest.mark.postgres


async def _connect(url: str) -> asyncpg.Connection:
    u = make_url(url)
    return await asyncpg.connect(host=u.host, port=u.port, user=u.username, database=u.database)


async def test_a_session_waiting_for_another_s_row_is_counted_as_a_row_lock_wait(postgres_url):
    holder, waiter = await _connect(postgres_url), await _connect(postgres_url)
    try:
        await holder.execute("CREATE TABLE t (id int PRIMARY KEY, n int); INSERT INTO t VALUES (1, 0)")
        holding = holder.transaction()
        await holding.start()
        await holder.execute("UPDATE t SET n = n + 1 WHERE id = 1")
        async with DbWaits(postgres_url, every=0.01) as waits:
            blocked = asyncio.create_task(waiter.execute("UPDATE t SET n = n + 1 WHERE id = 1"))
            await asyncio.sleep(0.5)
            assert not blocked.done()
        await holding.rollback()
        await blocked
    finally:
        await holder.close()
        await waiter.close()
    shares = waits.shares()
    assert waits.samples >= 10
    # The waiter waited the whole time; the holder sat idle in its transaction, waiting for us.
    assert shares["Lock:transactionid"] >= 0.8
    assert shares["Client:ClientRead"] >= 0.8


async def test_the_server_of_a_local_database_is_found_and_its_cpu_read(postgres_url):
    conn = await _connect(postgres_url)
    try:
        backend = await conn.fetchval("SELECT pg_backend_pid()")
        postmaster = _postgres_parent(backend)
        before = server_cpu_seconds(postmaster)
        await conn.fetchval("SELECT count(*) FROM generate_series(1, 3000000)")
        assert server_cpu_seconds(postmaster) - before >= 0.1
    finally:
        await conn.close()


def test_nothing_is_sampled_on_sqlite(tmp_path):
    waits = DbWaits(f"sqlite:///{tmp_path / 'x.db'}")
    asyncio.run(_enter_and_leave(waits))
    assert waits.samples == 0 and waits.shares() == {}


async def _enter_and_leave(waits: DbWaits) -> None:
    async with waits:
        await asyncio.sleep(0.05)
