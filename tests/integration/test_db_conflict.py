"""Races PostgreSQL breaks by aborting one transaction are told apart from bad statements and
from outages: the normalizer retries them at once instead of waiting for the visibility timeout."""

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from ticket_service.store.db import Database, is_conflict, is_outage


async def test_a_deadlock_is_a_conflict_to_retry_not_an_outage_and_a_bad_statement_is_neither(postgres_url):
    db = Database(postgres_url)
    try:
        async with db.write() as conn:
            await conn.execute(text("CREATE TABLE pair (id int PRIMARY KEY, v int)"))
            await conn.execute(text("INSERT INTO pair VALUES (1, 0), (2, 0)"))
        both_locked = asyncio.Barrier(2)

        async def cross(first: int, second: int) -> None:
            async with db.write() as conn:
                await conn.execute(text("UPDATE pair SET v = v + 1 WHERE id = :i").bindparams(i=first))
                await both_locked.wait()
                await conn.execute(text("UPDATE pair SET v = v + 1 WHERE id = :i").bindparams(i=second))
        results = await asyncio.gather(cross(1, 2), cross(2, 1), return_exceptions=True)
        [aborted] = [r for r in results if r is not None]
        assert isinstance(aborted, DBAPIError) and aborted.orig.sqlstate == "40P01"
        assert is_conflict(aborted) and not is_outage(aborted)
        with pytest.raises(DBAPIError) as bad:
            async with db.write() as conn:
                await conn.execute(text("SELECT no_such_column FROM pair"))
        assert not is_conflict(bad.value) and not is_outage(bad.value)
        with pytest.raises(DBAPIError) as taken:
            async with db.write() as conn:
                await conn.execute(text("INSERT INTO pair VALUES (1, 0)"))
        assert is_conflict(taken.value)
    finally:
        await db.dispose()
