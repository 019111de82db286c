"""The bench's baseline (raw bus and raw store) runs on a tiny size and reports each limit."""

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from ops.bench import baseline


async def test_baseline_measures_bus_and_store():
    row = await baseline.run(n=300)
    assert (row["scenario"], row["n"]) == ("baseline", 300)
    rates = [row["xadd_per_s"], row["xreadgroup_xack_per_s"], row["ticket_message_rows_per_s"]]
    assert all(r > 0 for r in rates)
    assert row["limit_per_s"] == min(rates)


async def test_on_postgresql_each_scenario_gets_a_scratch_database_dropped_after(postgres_url):
    # The database DATABASE_URL names is only where CREATE/DROP DATABASE run: left empty.
    row = await baseline.run(n=100, database_url=postgres_url)
    assert row["ticket_message_rows_per_s"] > 0
    engine = create_async_engine(postgres_url.replace("postgresql://", "postgresql+asyncpg://"))
    try:
        async with engine.connect() as conn:
            names = (await conn.execute(text("SELECT datname FROM pg_database"))).scalars().all()
            tables = (await conn.execute(text(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"))).scalar_one()
    finally:
        await engine.dispose()
    assert not [n for n in names if n.startswith("sb_bench_")]
    assert tables == 0
