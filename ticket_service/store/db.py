"""Engine setup (SQLite WAL by default, PostgreSQL via DATABASE_URL) and migrations."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
# Any fixed number: serializes concurrent `migrate` calls from several role processes.
_PG_MIGRATION_LOCK = 7_201_911
T = TypeVar("T")


def _json_dumps(value: Any) -> str:
    """JSON columns (message headers, threading trails, tags) written with orjson: about a
    tenth of ``json.dumps``'s cost (8 -> 0.7 µs for a chat message's headers and trail).
    Anything orjson will not write (an integer past 64 bits) goes through ``json.dumps``."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(value)


def _json_loads(text: str | bytes) -> Any:
    """orjson's reader, and ``json.loads`` for what it refuses (a lone surrogate escape that
    ``json.dumps`` wrote before)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


JSON_CODEC = {"json_serializer": _json_dumps, "json_deserializer": _json_loads}


_BUSY_TIMEOUT_MS = 30_000  # SQLite's own wait for its write lock, and the longest a queued writer waits in line


def _sqlite_tuning(engine: AsyncEngine | Engine) -> None:
    sync_engine = engine.sync_engine if isinstance(engine, AsyncEngine) else engine

    @event.listens_for(sync_engine, "connect")
    def _connect(dbapi_conn, _record) -> None:
        # We issue BEGIN ourselves (below), so the driver must not.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", f"busy_timeout={_BUSY_TIMEOUT_MS}", "foreign_keys=ON"):
            cur.execute(f"PRAGMA {pragma}")
        cur.close()

    @event.listens_for(sync_engine, "begin")
    def _begin(conn: Connection) -> None:
        # Writers take the write lock up front: a deferred transaction that later upgrades
        # to a writer fails with SQLITE_BUSY instead of waiting for the busy timeout.
        # ``_OPEN``: begun on the driver already (``Database._sync_txn``).
        mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        if mode != _OPEN:
            conn.exec_driver_sql(f"BEGIN {mode}")


_OPEN = "open"
# An async writer hands the writers' lock on to the next of its process's waiting, for as
# long as the lock has been held less than this (about one normalizer batch of 128 messages).
_ASYNC_RUN_S = 0.010


class WriterQueue:
    """The writers of every process on one SQLite file, one at a time and in turn.

    SQLite's own wait for its write lock is a busy handler that sleeps 1, 2, 5, 10 … 100 ms
    between tries: two processes writing in turn (two normalizers, a normalizer and the
    router) each lost the rest of a sleep whenever the other held the lock. Here a writer
    waits on an ``flock`` of ``<db>-writers``, woken when it is let go, before BEGIN IMMEDIATE.

    In turn: a writer first takes ``<db>-writers-next`` and lets it go once it holds the
    writers' lock. The one holding ``-next`` is the one waiting on ``-writers``, so a writer
    that lets go and at once wants it again (a normalizer with a second batch ready) queues
    behind it instead of taking it back first. Without the turn, one normalizer could keep
    the lock batch after batch while the other sat with its parsed batches: two SQLite
    normalizers on a backlog (``python -m ops.bench --scenarios normalizer --normalizers 2``,
    five runs each) kept 1.18-1.57 cores busy without it, 1.58-1.69 with it; stored per
    second the same within the runs' spread, and a later run with it kept only 1.14 busy.

    ``Database.write()`` (the async engine: the API, the console, the CLI) waits in the same
    line through ``take_async``, on open files of its own.
    """

    def __init__(self, database: str) -> None:
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
        self.turn = os.open(database + "-writers-next", flags, 0o600)
        self.writers = os.open(database + "-writers", flags, 0o600)

    def take(self) -> None:
        """Blocks this thread only: ``flock`` lets go of the GIL while it waits."""
        fcntl.flock(self.turn, fcntl.LOCK_EX)
        try:
            fcntl.flock(self.writers, fcntl.LOCK_EX)
        finally:
            fcntl.flock(self.turn, fcntl.LOCK_UN)

    def let_go(self) -> None:
        fcntl.flock(self.writers, fcntl.LOCK_UN)

    async def take_async(self, thread: ThreadPoolExecutor, timeout_s: float) -> bool:
        """``take`` from a coroutine, waited for in ``thread``; True once held.

        False past ``timeout_s``: the writer goes on without it, to SQLite's busy handler as
        before the queue (a write nested in another's transaction would otherwise wait
        forever). A wait given up on or cancelled lets go of the lock once it comes.
        """
        waiting = asyncio.get_running_loop().run_in_executor(thread, self.take)
        try:
            await asyncio.wait_for(asyncio.shield(waiting), timeout_s)
        except TimeoutError:
            waiting.add_done_callback(self._let_go_once_taken)
            return False
        except BaseException:
            waiting.add_done_callback(self._let_go_once_taken)
            raise
        return True

    def _let_go_once_taken(self, waiting: asyncio.Future) -> None:
        if not waiting.cancelled() and waiting.exception() is None:
            self.let_go()

    def close(self) -> None:
        os.close(self.turn)
        os.close(self.writers)


def _driver_sql(conn: Connection, sql: str) -> None:
    """``sql`` on the sqlite3 connection, its errors as SQLAlchemy's (as ``compiled.Statement``)."""
    dbapi = conn.dialect.loaded_dbapi
    try:
        conn.connection.dbapi_connection.execute(sql)
    except dbapi.Error as exc:
        raise DBAPIError.instance(sql, (), exc, dbapi.Error) from exc


def is_outage(exc: BaseException) -> bool:
    """The database is unreachable or went away (as opposed to a bad statement or row)."""
    if isinstance(exc, OSError | OperationalError | InterfaceError | PoolTimeout):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


# PostgreSQL's deadlock_detected and serialization_failure: two transactions met, neither is
# wrong; the one PostgreSQL chose to abort succeeds when run again.
_CONFLICT_STATES = frozenset({"40P01", "40001"})


def is_conflict(exc: BaseException) -> bool:
    """A race with another transaction that a retry resolves: a unique key another writer
    took first, or a deadlock or serialization failure PostgreSQL broke by aborting us."""
    if isinstance(exc, IntegrityError):
        return True
    return isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) in _CONFLICT_STATES


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
    """The engine plus ``write()``/``read()`` transactions.

    ``run_write(fn, ...)`` runs a synchronous ``fn(conn, ...)`` in one write transaction: the
    hot paths (the normalizer's batch, a routing decision) issue many small statements, and
    doing them synchronously saves an event-loop round trip per statement. On SQLite ``fn``
    runs on a pysqlite connection in this database's own thread (one hop per transaction,
    not per statement); on PostgreSQL it runs over asyncpg through SQLAlchemy's ``run_sync``.
    """

    def __init__(self, url: str, pool_size: int = 5, read_url: str = "") -> None:
        """``read_url``: a streaming replica of ``url`` for ``read_may_lag`` (PostgreSQL)."""
        url = self.url = async_url(url)
        self.is_sqlite = url.startswith("sqlite")
        self._sqlite_path = url.split("///", 1)[1] if self.is_sqlite else ""
        if self.is_sqlite:
            Path(self._sqlite_path).parent.mkdir(parents=True, exist_ok=True)
            self.engine = create_async_engine(url, **JSON_CODEC)
            _sqlite_tuning(self.engine)
        else:
            self.engine = create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True,
                                              **JSON_CODEC)
        self._sync: Engine | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._queue: WriterQueue | None = None
        # ``write()``'s place in the same queue (``_in_line``), made at its first write.
        self._async_queue: WriterQueue | None = None
        self._async_thread: ThreadPoolExecutor | None = None
        self._async_writers: asyncio.Lock | None = None
        self._async_holding, self._async_waiting, self._async_since = False, 0, 0.0
        self.replica: AsyncEngine | None = None
        if read_url:
            if self.is_sqlite or async_url(read_url).startswith("sqlite"):
                raise ValueError("a read replica (DATABASE_READ_URL) needs PostgreSQL for both URLs")
            self.replica = create_async_engine(async_url(read_url), pool_size=pool_size, max_overflow=pool_size,
                                               pool_pre_ping=True, **JSON_CODEC)

    def _sync_engine(self) -> Engine:
        if self._sync is None:
            self._sync = create_engine(self.url.replace("sqlite+aiosqlite://", "sqlite+pysqlite://", 1), **JSON_CODEC)
            _sqlite_tuning(self._sync)
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
            if self._queued_path():
                self._queue = WriterQueue(self._sqlite_path)
        return self._sync

    def _queued_path(self) -> bool:
        """A database file of its own (not ``:memory:`` nor a ``file:`` URI): its writers queue."""
        path = self._sqlite_path
        return bool(path) and path != ":memory:" and not path.startswith("file:")

    def _sync_txn(self, mode: str, fn: Callable[..., T], args: tuple, kwargs: dict) -> T:
        """``fn`` in one transaction, begun and committed on the sqlite3 connection.

        SQLAlchemy's ``begin()`` ran BEGIN through its whole execution path (an event, an
        execution context, a result) and its commit through its transaction objects: about
        3 µs a chat message in the normalizer (batches of 128), while holding the write lock.
        What ``fn`` runs through ``conn.execute`` still works: SQLAlchemy begins its own
        transaction object over the open one (without a second BEGIN) and it is committed
        or rolled back through it.
        """
        queue = self._queue if mode == "IMMEDIATE" else None
        if queue is not None:
            queue.take()
        try:
            return self._sync_txn_begun(mode, fn, args, kwargs)
        finally:
            if queue is not None:
                queue.let_go()

    def _sync_txn_begun(self, mode: str, fn: Callable[..., T], args: tuple, kwargs: dict) -> T:
        with self._sync_engine().connect() as conn:
            conn = conn.execution_options(sqlite_begin=_OPEN)
            _driver_sql(conn, f"BEGIN {mode}")
            try:
                result = fn(conn, *args, **kwargs)
            except BaseException:
                # What ``fn`` raised is what the caller tells outages and races by: a failed
                # rollback (the connection gone) is left to the pool's reset on return.
                with contextlib.suppress(Exception):
                    if conn.in_transaction():
                        conn.rollback()
                    else:
                        conn.connection.dbapi_connection.rollback()
                raise
            if conn.in_transaction():
                conn.commit()
            else:
                _driver_sql(conn, "COMMIT")
            return result

    async def _run(self, mode: str, fn: Callable[..., T], args: tuple, kwargs: dict) -> T:
        if self.is_sqlite:
            self._sync_engine()
            return await asyncio.get_running_loop().run_in_executor(
                self._thread, partial(self._sync_txn, mode, fn, args, kwargs))
        async with self.engine.connect() as conn, conn.begin():
            return await conn.run_sync(fn, *args, **kwargs)

    async def run_write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(conn, *args, **kwargs)`` in one write transaction; committed when it returns."""
        return await self._run("IMMEDIATE", fn, args, kwargs)

    async def run_read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(conn, *args, **kwargs)`` in one read transaction."""
        return await self._run("DEFERRED", fn, args, kwargs)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction on the async engine. On SQLite it waits in the writers' queue
        first, as ``run_write`` does. Through SQLite's busy handler alone, an API write met by
        another process committing ~9 ms transactions back to back waited 56-732 ms at the
        median and up to 2.1-3.7 s (two such processes: 112-113 ms, up to 1.5-1.8 s), losing
        whenever it slept through a hand-over; in the queue 9-11 ms and at most 24-30 ms
        (two: 18-19 ms, at most 45-74 ms), and the other writers' rate the same."""
        if not (self.is_sqlite and self._queued_path()):
            async with self.engine.begin() as conn:
                yield conn
            return
        async with self._in_line(_BUSY_TIMEOUT_MS / 1000), self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def _in_line(self, timeout_s: float) -> AsyncIterator[None]:
        """This process's async writers one at a time in the writers' queue, on open files of
        their own (an ``flock`` belongs to an open file: sharing the sync writer's would let
        both in at once). Past ``timeout_s`` in all, a writer goes on without.

        Once in, the lock passes from one of this process's writers to the next waiting, for
        ``_ASYNC_RUN_S``, before it is let go: an API's concurrent requests are short
        transactions, and with each taking a turn of its own behind a normalizer's batch, four
        agents changing tickets without pause waited 40-81 ms at the median (p99 72-113 ms)
        while normalizers stored a backlog.
        """
        if self._async_queue is None:
            self._async_queue = WriterQueue(self._sqlite_path)
            self._async_thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-queue")
            self._async_writers = asyncio.Lock()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        self._async_waiting += 1
        try:
            await asyncio.wait_for(self._async_writers.acquire(), timeout_s)
        except TimeoutError:
            yield
            return
        finally:
            self._async_waiting -= 1
        try:
            if not self._async_holding:
                self._async_holding = await self._async_queue.take_async(
                    self._async_thread, max(deadline - loop.time(), 0.0))
                self._async_since = loop.time()
            yield
        finally:
            if self._async_holding and (not self._async_waiting or loop.time() - self._async_since >= _ASYNC_RUN_S):
                self._async_queue.let_go()
                self._async_holding = False
            self._async_writers.release()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            if self.is_sqlite:
                conn = await conn.execution_options(sqlite_begin="DEFERRED")
            async with conn.begin():
                yield conn

    @asynccontextmanager
    async def read_may_lag(self) -> AsyncIterator[AsyncConnection]:
        """A read transaction on the replica when there is one, else as ``read()``.

        The replica replays the primary's WAL a little behind it: what this request (or any
        other a moment ago) wrote may not be there yet. Use it for lists, searches and plain
        views only; a read that must see a write goes through ``read()`` (the primary).
        """
        if self.replica is None:
            async with self.read() as conn:
                yield conn
            return
        async with self.replica.connect() as conn, conn.begin():
            yield conn

    async def ping(self) -> bool:
        async with self.read() as conn:
            return (await conn.execute(text("SELECT 1"))).scalar() == 1

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.replica is not None:
            await self.replica.dispose()
        if self._sync is not None:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._sync.dispose)
            self._thread.shutdown()
            self._sync = self._thread = None
        if self._queue is not None:
            self._queue.close()
            self._queue = None
        if self._async_queue is not None:
            self._async_thread.shutdown()
            self._async_queue.close()
            self._async_queue = self._async_thread = None


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
