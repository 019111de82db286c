"""Writers of several processes on one SQLite file queue on a lock beside it: the next writer
starts when the one before commits, not when SQLite's busy handler wakes it from a sleep."""

import asyncio
import fcntl
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text

from ticket_service.store.db import Database, WriterQueue

HOLD_S = 0.24


@pytest.fixture
async def pair(tmp_path):
    """Two Database objects on one SQLite file with a table ``t``: each opens the queue's
    files apart, as two role processes do."""
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    first, second = Database(url), Database(url)
    await first.run_write(lambda conn: conn.exec_driver_sql("CREATE TABLE t (v TEXT)"))
    yield first, second
    await first.dispose()
    await second.dispose()


async def _held_a_while(db: Database, value: str) -> tuple[asyncio.Future, dict[str, float]]:
    """``db`` writes ``value`` and keeps the write lock for HOLD_S; returns once it holds it,
    with the write's future and ``{"done": when it was about to commit}``."""
    held, marks = threading.Event(), {}

    def hold(conn) -> None:
        conn.exec_driver_sql("INSERT INTO t VALUES (?)", (value,))
        held.set()
        time.sleep(HOLD_S)
        marks["done"] = time.perf_counter()

    holding = asyncio.ensure_future(db.run_write(hold))
    await asyncio.get_running_loop().run_in_executor(None, held.wait, 5)
    return holding, marks


async def test_a_waiting_writer_starts_as_soon_as_the_writer_before_it_commits(pair, tmp_path):
    first, second = pair

    def follow(conn) -> tuple[float, list[str]]:
        began = time.perf_counter()
        conn.exec_driver_sql("INSERT INTO t VALUES ('second')")
        return began, [v for (v,) in conn.exec_driver_sql("SELECT v FROM t ORDER BY rowid")]

    holding, marks = await _held_a_while(first, "first")
    began, seen = await second.run_write(follow)
    await holding
    assert seen == ["first", "second"]
    # SQLite's busy handler alone sleeps 25-100 ms between tries this far into a wait:
    # the second writer would begin tens of milliseconds after the first let go.
    late = began - marks["done"]
    assert 0 <= late < 0.04, f"the second writer began {late * 1000:.1f} ms after the first committed"
    assert (tmp_path / "queue.db-writers").exists()


async def test_a_writer_that_fails_lets_the_next_one_in(pair):
    first, second = pair

    def fail(conn) -> None:
        conn.exec_driver_sql("INSERT INTO t VALUES ('rolled back')")
        raise RuntimeError("bad row")

    with pytest.raises(RuntimeError, match="bad row"):
        await first.run_write(fail)
    rows = await asyncio.wait_for(second.run_write(
        lambda conn: conn.exec_driver_sql("SELECT count(*) FROM t").scalar()), 2)
    assert rows == 0


async def test_a_writer_that_lets_go_and_wants_in_again_queues_behind_the_one_waiting(pair, tmp_path):
    first, second = pair
    held, go_on = threading.Event(), threading.Event()

    def write(name: str, wait: bool = False):
        def fn(conn) -> None:
            conn.exec_driver_sql("INSERT INTO t VALUES (?)", (name,))
            if wait:
                held.set()
                go_on.wait(5)
        return fn

    # The first Database's writer thread runs its two writes back to back: it lets go
    # after the first and asks again at once, while the second waits.
    one = asyncio.ensure_future(first.run_write(write("first 1", wait=True)))
    two = asyncio.ensure_future(first.run_write(write("first 2")))
    await asyncio.get_running_loop().run_in_executor(None, held.wait, 5)
    waiting = asyncio.ensure_future(second.run_write(write("second")))
    await asyncio.sleep(0.2)  # the second is blocked on the writers' lock by now
    # It holds the turn while it waits: whoever comes next (the first, back for its second
    # write) waits for the turn, which it gets only once the second holds the lock.
    probe = os.open(tmp_path / "queue.db-writers-next", os.O_RDWR)
    try:
        with pytest.raises(BlockingIOError):
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(probe)
    go_on.set()
    await asyncio.gather(one, two, waiting)
    order = await first.run_read(lambda conn: [v for (v,) in conn.exec_driver_sql(
        "SELECT v FROM t ORDER BY rowid")])
    assert order == ["first 1", "second", "first 2"]


async def _insert(db: Database, value: str) -> float:
    """``value`` through ``write()`` (the async engine, as the API writes); when it began."""
    async with db.write() as conn:
        began = time.perf_counter()
        await conn.execute(text("INSERT INTO t VALUES (:v)"), {"v": value})
    return began


async def test_an_async_write_queues_with_the_sync_writers(pair):
    first, second = pair
    holding, marks = await _held_a_while(first, "batch")
    began = await _insert(second, "api")
    await holding
    late = began - marks["done"]
    assert 0 <= late < 0.04, f"the API write began {late * 1000:.1f} ms after the batch committed"
    # And the other way round: a batch waits in line behind an API write.
    async with second.write() as conn:
        waiting = asyncio.ensure_future(first.run_write(
            lambda c: (time.perf_counter(), c.exec_driver_sql("INSERT INTO t VALUES ('batch 2')"))[0]))
        await conn.execute(text("INSERT INTO t VALUES ('api 2')"))
        await asyncio.sleep(HOLD_S)
        assert not waiting.done()
        committing = time.perf_counter()
    late = await waiting - committing
    assert 0 <= late < 0.04, f"the batch began {late * 1000:.1f} ms after the API write committed"
    rows = await first.run_read(lambda c: [v for (v,) in c.exec_driver_sql("SELECT v FROM t ORDER BY rowid")])
    assert rows == ["batch", "api", "api 2", "batch 2"]


async def test_a_cancelled_wait_in_line_lets_go_once_its_turn_comes(pair):
    first, second = pair
    held, go_on = threading.Event(), threading.Event()

    def hold(conn) -> None:
        held.set()
        go_on.wait(5)

    holding = asyncio.ensure_future(first.run_write(hold))
    await asyncio.get_running_loop().run_in_executor(None, held.wait, 5)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(_insert(second, "given up"), 0.1)  # cancelled while in line
    go_on.set()
    await holding
    # Its turn came after it was cancelled: let go at once, the other process is not stuck.
    await asyncio.wait_for(first.run_write(lambda c: c.exec_driver_sql("INSERT INTO t VALUES ('batch')")), 2)
    await asyncio.wait_for(_insert(second, "next"), 2)
    rows = await first.run_read(lambda c: [v for (v,) in c.exec_driver_sql("SELECT v FROM t ORDER BY rowid")])
    assert rows == ["batch", "next"]


async def test_a_wait_in_line_past_its_limit_goes_on_without_the_lock_and_lets_go_later(tmp_path):
    path = str(tmp_path / "limit.db")
    holder, waiter = WriterQueue(path), WriterQueue(path)
    thread = ThreadPoolExecutor(1)
    try:
        holder.take()
        started = time.perf_counter()
        assert await waiter.take_async(thread, 0.1) is False
        waited = time.perf_counter() - started
        assert 0.1 <= waited < 0.5
        holder.let_go()  # the waiter's thread takes it now, and its wait lets go at once
        await asyncio.sleep(0.2)
        probe = WriterQueue(path)
        try:
            fcntl.flock(probe.writers, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises if still held
        finally:
            probe.close()
    finally:
        thread.shutdown()
        holder.close()
        waiter.close()


async def test_a_write_nested_in_another_of_its_process_waits_in_line_only_so_long(pair):
    first, _ = pair
    async with first._in_line(5):
        started = time.perf_counter()
        async with first._in_line(0.1):  # its own process's writer ahead of it never leaves
            waited = time.perf_counter() - started
    assert 0.1 <= waited < 0.5
    async with asyncio.timeout(2), first._in_line(5):  # the line is free again
        pass


@pytest.mark.parametrize(("run_s", "order"), [(5.0, ["api 1", "api 2", "batch"]), (0.0, ["api 1", "batch", "api 2"])])
async def test_a_processs_async_writers_hand_the_lock_on_for_a_while_then_let_the_others_in(
        pair, monkeypatch, run_s, order):
    from ticket_service.store import db as db_module

    monkeypatch.setattr(db_module, "_ASYNC_RUN_S", run_s)
    first, second = pair
    async with second.write() as conn:
        await conn.execute(text("INSERT INTO t VALUES ('api 1')"))
        batch = asyncio.ensure_future(first.run_write(lambda c: c.exec_driver_sql("INSERT INTO t VALUES ('batch')")))
        api_2 = asyncio.ensure_future(_insert(second, "api 2"))
        await asyncio.sleep(HOLD_S)  # the batch waits on the writers' lock, the API's second write behind the first
        assert not batch.done() and not api_2.done()
    await asyncio.gather(batch, api_2)
    rows = await first.run_read(lambda c: [v for (v,) in c.exec_driver_sql("SELECT v FROM t ORDER BY rowid")])
    assert rows == order
