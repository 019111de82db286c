"""Writers of several processes on one SQLite file queue on a lock beside it: the next writer
starts when the one before commits, not when SQLite's busy handler wakes it from a sleep."""

import asyncio
import fcntl
import os
import threading
import time

import pytest

from ticket_service.store.db import Database

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


async def test_a_waiting_writer_starts_as_soon_as_the_writer_before_it_commits(pair, tmp_path):
    first, second = pair
    held = threading.Event()
    marks: dict[str, float] = {}

    def hold(conn) -> None:
        conn.exec_driver_sql("INSERT INTO t VALUES ('first')")
        held.set()
        time.sleep(HOLD_S)
        marks["first_done"] = time.perf_counter()

    def follow(conn) -> list[str]:
        marks["second_began"] = time.perf_counter()
        conn.exec_driver_sql("INSERT INTO t VALUES ('second')")
        return [v for (v,) in conn.exec_driver_sql("SELECT v FROM t ORDER BY rowid")]

    holding = asyncio.ensure_future(first.run_write(hold))
    await asyncio.get_running_loop().run_in_executor(None, held.wait, 5)
    seen = await second.run_write(follow)
    await holding
    assert seen == ["first", "second"]
    # SQLite's busy handler alone sleeps 25-100 ms between tries this far into a wait:
    # the second writer would begin tens of milliseconds after the first let go.
    late = marks["second_began"] - marks["first_done"]
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
