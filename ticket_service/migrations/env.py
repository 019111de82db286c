"""Alembic environment: runs on the connection handed in by ``store.migrate`` or, from the
alembic CLI, on the database the settings name."""

import asyncio

from alembic import context

from ticket_service.store.tables import metadata


def _run(connection) -> None:
    context.configure(
        connection=connection, target_metadata=metadata, render_as_batch=True, compare_type=True
    )
    with context.begin_transaction():
        context.run_migrations()


def _online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from core.settings import load
    from ticket_service.store.db import Database

    async def run() -> None:
        db = Database(load().effective_database_url)
        async with db.write() as conn:
            await conn.run_sync(_run)
        await db.dispose()

    asyncio.run(run())


_online()
