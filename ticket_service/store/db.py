"""Engine setup (SQLite WAL by default, PostgreSQL via DATABASE_URL) and migrations."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
# Any fixed number: serializes concurrent `migrate` calls from several role processes.
_PG_MIGRATION_LOCK = 7_201_911


def _sqlite_tuning(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_conn, _record) -> None:
        # We issue BEGIN ourselves (below), so the driver must not.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=30000", "foreign_keys=ON"):
            cur.execute(f"PRAGMA {pragma}")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Connection) -> None:
        # Writers take the write lock up front: a deferred transaction that later upgrades
        # to a writer fails with SQLITE_BUSY instead of waiting for the busy timeout.
        mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")


def is_outage(exc: BaseException) -> bool:
    """The database is unreachable or went away (as opposed to a bad statement or row)."""
    if isinstance(exc, OSError | OperationalError | InterfaceError | PoolTimeout):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def async_url(url: str) -> str:
    """The same database URL with the async driver this project uses."""
    for plain, driver in (
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain):]
    return url


class Database:
    """The engine plus ``write()``/``read()`` transactions."""

    def __init__(self, url: str, pool_size: int = 5) -> None:
        url = self.url = async_url(url)
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            Path(url.split("///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
            self.engine = create_async_engine(url)
            _sqlite_tuning(self.engine)
        else:
            self.engine = create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            if self.is_sqlite:
                conn = await conn.execution_options(sqlite_begin="DEFERRED")
            async with conn.begin():
                yield conn

    async def ping(self) -> bool:
        async with self.read() as conn:
            return (await conn.execute(text("SELECT 1"))).scalar() == 1

    async def dispose(self) -> None:
        await self.engine.dispose()


def _upgrade(connection: Connection, revision: str) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})"))
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


async def migrate(db: Database, revision: str = "head") -> None:
    """Bring the schema to ``revision``; safe to call from several processes at once."""
    async with db.write() as conn:
        await conn.run_sync(_upgrade, revision)
