"""Start a throwaway system (Redis with AOF, a database, role processes) for a benchmark."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import asyncpg
import redis
from sqlalchemy.engine import make_url

from core import keys
from core.redis import redis_binary
from ticket_service.store import admin
from ticket_service.store import agents as agents_store
from ticket_service.store.db import Database, migrate

SUPPORT = "bench@example.com"
# ``--cpu-cap ROLE=CORES``: each replica of ROLE held to that many cores by its own cgroup
# (``CpuCap``), as a replica with a core of its own would be beside the database server.
CPU_CAPS: dict[str, float] = {}
# Agents for the scenarios that route: enough room that no ticket waits in the queue, so
# ingress→assigned is the pipeline's latency and not an agent shortage.
AGENTS, AGENT_CAPACITY = 50, 10_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class System:
    """Redis on a free port (appendonly, everysec), a database and role processes.

    The database is SQLite in the run's directory or, with DATABASE_URL, a scratch database
    created on that PostgreSQL server for this run and dropped after it: a scenario starts
    empty, and the database the URL names is never written to (its role needs CREATEDB).
    """

    def __init__(self, database_url: str | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="sb-bench-"))
        self.redis_port = free_port()
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.server_url = database_url  # PostgreSQL: where the scratch database is made
        self.scratch: str | None = None
        self.postmaster: int | None = None  # a PostgreSQL server on this machine: its CPU is read too
        self.database_url = database_url or f"sqlite:///{self.dir / 'bench.db'}"
        self.smtp_port = free_port()
        self.procs: list[subprocess.Popen] = []
        self.logs: dict[int, Path] = {}
        self.keep = False  # a failed run keeps its directory (role logs, database) to look at
        self.caps: list[CpuCap] = []

    def env(self, **settings: object) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
        env.update(REDIS_URL=self.redis_url, DATABASE_URL=self.database_url,
                   SWITCHBOARD_DATA_DIR=str(self.dir / "data"), SWITCHBOARD_LOG_LEVEL="warning",
                   SWITCHBOARD_SMTP_PORT=str(self.smtp_port), SWITCHBOARD_DEMO="false",
                   # every bench client connects from 127.0.0.1: no per-address connection cap
                   SWITCHBOARD_HTTP_MAX_CONNECTIONS_PER_IP="0", SWITCHBOARD_SMTP_MAX_CONNECTIONS_PER_IP="0")
        env.update({f"SWITCHBOARD_{k.upper()}": str(v) for k, v in settings.items()})
        return env

    def start_redis(self) -> None:
        self.redis = subprocess.Popen(
            [redis_binary(), "--port", str(self.redis_port), "--bind", "127.0.0.1", "--dir", str(self.dir),
             "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL,
        )

    async def start(self) -> int:
        """Start Redis, migrate, create the bench tenant; returns its email account id."""
        if self.server_url is not None and make_url(self.server_url).get_backend_name() == "postgresql":
            self.scratch = f"sb_bench_{secrets.token_hex(6)}"
            await _admin(self.server_url, f'CREATE DATABASE "{self.scratch}"')
            self.database_url = make_url(self.server_url).set(database=self.scratch).render_as_string(
                hide_password=False)
            await _count_statements(self.database_url)
            self.postmaster = await _postmaster_pid(self.database_url)
        self.start_redis()
        db = Database(self.database_url)
        await migrate(db)
        async with db.write() as conn:
            tenant = await admin.create_tenant(conn, "bench")
            account = await admin.add_account(conn, tenant, "email", SUPPORT)
        await db.dispose()
        return account

    async def seed_agents(self, agents: int = AGENTS, capacity: int = AGENT_CAPACITY) -> None:
        """Online agents in the bench tenant with room for email and chat tickets."""
        db = Database(self.database_url)
        try:
            async with db.write() as conn:
                tenant = await admin.tenant_id(conn, "bench")
                for i in range(agents):
                    await conn.run_sync(agents_store.create_agent, tenant, f"agent {i}", f"a{i}@bench.test",
                                             status="online", tier=i % 3,
                                             capacity={"email": capacity, "chat": capacity})
        finally:
            await db.dispose()

    def role(self, name: str, **settings: object) -> subprocess.Popen:
        # Warnings and crashes go to <dir>/<role>-<n>.log, for when a run fails.
        log = self.dir / f"{name}-{sum(p.args[-1] == name for p in self.procs)}.log"
        with log.open("ab") as out:
            # BENCH_PROFILE=1: each role runs under cProfile, written to /tmp/prof_<role>_<n>.out on exit.
            prof = ["-m", "cProfile", "-o", f"/tmp/prof_{name}_{len(self.procs)}.out"] if os.environ.get("BENCH_PROFILE") else []
            proc = subprocess.Popen([sys.executable, *prof, "-m", "ops.cli", name], env=self.env(**settings),
                                    stdout=subprocess.DEVNULL, stderr=out)
        self.procs.append(proc)
        self.logs[proc.pid] = log
        if name in CPU_CAPS:
            self.caps.append(CpuCap(proc.pid, CPU_CAPS[name]))
        return proc

    def check(self) -> None:
        """Raise when a role process has exited: a wait on it would never end."""
        for proc in self.procs:
            if proc.poll() is not None:
                self.keep = True
                log = self.logs[proc.pid]
                tail = log.read_text(errors="replace").strip().splitlines()[-5:]
                raise RuntimeError(f"{proc.args[-1]} exited with {proc.returncode}; {log}:\n"
                                   + "\n".join(tail))

    def cpu_seconds(self) -> dict[str, float]:
        """CPU (user + system) each role has used so far, summed over its replicas, and Redis's."""
        used: dict[str, float] = {}
        for proc in self.procs:
            used[proc.args[-1]] = used.get(proc.args[-1], 0.0) + process_cpu_seconds(proc.pid)
        used["redis"] = process_cpu_seconds(self.redis.pid)
        if self.postmaster is not None:
            used["postgres"] = server_cpu_seconds(self.postmaster)
        return used

    async def db_statements(self) -> int | None:
        """Statements the scratch PostgreSQL database has run so far, as pg_stat_statements counts
        them, without transaction control and the bench's own ``count(...)`` polls; None on
        SQLite or when the server does not preload pg_stat_statements."""
        if self.scratch is None:
            return None
        conn = await _connect(self.database_url)
        try:
            if not await conn.fetchval("SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'"):
                return None
            return await conn.fetchval(
                "SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements"
                " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
                " AND query !~* '^(begin|commit|rollback|start transaction)' AND query !~* 'count\\('")
        finally:
            await conn.close()

    def wait_workers(self, role: str, count: int, timeout: float = 60.0) -> None:
        """Until ``count`` replicas of a worker role keep a heartbeat: started up, so what CPU
        they use from now on is work, not imports."""
        client = redis.Redis.from_url(self.redis_url)
        deadline = time.monotonic() + timeout
        try:
            while len(list(client.scan_iter(match=keys.heartbeat_key(role, "*")))) < count:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"fewer than {count} {role} heartbeats after {timeout} s")
                self.check()
                time.sleep(0.05)
        finally:
            client.close()

    def wait_port(self, port: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"nothing listens on {port}")

    def stop(self) -> None:
        """Role processes first (they finish their batch against a live Redis), then Redis;
        then the run's directory goes, unless the run failed."""
        for group in (self.procs, [self.redis]):
            for proc in group:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in group:
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        for cap in self.caps:
            cap.remove()
        failed = self.keep or sys.exc_info()[0] is not None
        if self.scratch is not None and not failed:
            # stop() runs inside the scenario's event loop: the drop gets a loop of its own.
            drop = threading.Thread(target=asyncio.run, args=(
                _admin(self.server_url, f'DROP DATABASE IF EXISTS "{self.scratch}" WITH (FORCE)'),))
            drop.start()
            drop.join()
        if failed:
            kept = f"{self.dir} (role logs, database)" + (f" and database {self.scratch}" if self.scratch else "")
            print(f"bench: kept {kept}", file=sys.stderr)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


class CpuCap:
    """One process held to ``cores`` of CPU time per second by a cgroup of its own: cgroup v2's
    ``cpu.max`` where the cpu controller is on the unified hierarchy, else v1's CFS quota.
    Needs root (the bench refuses the option otherwise)."""

    PERIOD_US = 100_000

    def __init__(self, pid: int, cores: float) -> None:
        quota = max(1000, round(cores * self.PERIOD_US))
        root = Path("/sys/fs/cgroup")
        name = f"switchboard-bench-{pid}"
        if "cpu" in _read(root / "cgroup.controllers").split():
            if "cpu" not in _read(root / "cgroup.subtree_control").split():
                (root / "cgroup.subtree_control").write_text("+cpu")
            self.path = root / name
            self.path.mkdir()
            (self.path / "cpu.max").write_text(f"{quota} {self.PERIOD_US}")
        else:
            self.path = root / "cpu" / name
            self.path.mkdir()
            (self.path / "cpu.cfs_period_us").write_text(str(self.PERIOD_US))
            (self.path / "cpu.cfs_quota_us").write_text(str(quota))
        (self.path / "cgroup.procs").write_text(str(pid))

    def remove(self) -> None:
        """After the process has exited (an empty cgroup is all ``rmdir`` removes)."""
        try:
            self.path.rmdir()
        except OSError as exc:
            print(f"bench: cgroup {self.path} left: {exc}", file=sys.stderr)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _stat_fields(pid: int | str) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (which may hold spaces), from
    the state on (field 3); None once the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a live process (Linux ``/proc/<pid>/stat``, fields 14 and 15); 0 once it is gone."""
    fields = _stat_fields(pid)
    return 0.0 if fields is None else (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_cpu_seconds(postmaster: int) -> float:
    """A PostgreSQL server's CPU so far: the postmaster's own, its exited children's (which it
    waited for: ``cutime``/``cstime``, fields 16 and 17) and its live children's (the backends,
    the checkpointer, the WAL writer)."""
    fields = _stat_fields(postmaster)
    if fields is None:
        return 0.0
    total = sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    for task in Path("/proc").iterdir():
        if task.name.isdigit() and (child := _stat_fields(task.name)) is not None and int(child[1]) == postmaster:
            total += (int(child[11]) + int(child[12])) / os.sysconf("SC_CLK_TCK")
    return total


def cpu_per_item_us(before: dict[str, float], after: dict[str, float], items: int) -> dict[str, int]:
    """µs of CPU per item, per role, between two ``System.cpu_seconds`` readings."""
    return {role: round((after[role] - before.get(role, 0.0)) * 1e6 / max(items, 1)) for role in after}


def cpu_per_msg(before: dict[str, float], after: dict[str, float], items: int) -> dict[str, int]:
    """The same as ``cpu_us_per_msg_<role>`` result fields, one per role and Redis."""
    return {f"cpu_us_per_msg_{role}": us for role, us in cpu_per_item_us(before, after, items).items()}


async def _connect(database_url: str) -> asyncpg.Connection:
    url = make_url(database_url)
    return await asyncpg.connect(host=url.host or "127.0.0.1", port=url.port or 5432, user=url.username,
                                 password=url.password, database=url.database or "postgres")


async def _postmaster_pid(database_url: str) -> int | None:
    """The server process, when it runs on this machine: a backend's parent."""
    conn = await _connect(database_url)
    try:
        # Read while the connection is open: its backend process ends with it.
        return _postgres_parent(await conn.fetchval("SELECT pg_backend_pid()"))
    finally:
        await conn.close()


def _postgres_parent(backend: int) -> int | None:
    try:
        status = Path(f"/proc/{backend}/status").read_text()
    except OSError:
        return None  # another machine's
    parent = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
    # A backend of our connection (not a same-numbered process of this machine): the parent is a postgres.
    return parent if "postgres" in Path(f"/proc/{parent}/comm").read_text() else None


async def _admin(server_url: str, sql: str) -> None:
    """One statement outside a transaction (CREATE/DROP DATABASE) on the server's own database."""
    conn = await _connect(server_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


class DbWaits:
    """What the scratch database's busy sessions are doing, sampled every ``every`` seconds
    from ``pg_stat_activity`` while the block runs: the share of samples per wait event
    (``Lock:transactionid`` a row another transaction holds, ``LWLock:…`` shared memory,
    ``IO:…`` files, ``Client:ClientRead`` a transaction waiting for its client, ``CPU`` none).

    ``async with DbWaits(url) as waits: …`` then ``waits.shares()``; on SQLite nothing is sampled.
    """

    def __init__(self, database_url: str | None, every: float = 0.02) -> None:
        self.url = database_url if database_url and make_url(database_url).get_backend_name() == "postgresql" else None
        self.every = every
        self.counts: dict[str, int] = {}
        self.samples = 0
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> DbWaits:
        if self.url is not None:
            conn = await _connect(self.url)
            self._task = asyncio.create_task(self._sample(conn))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _sample(self, conn: asyncpg.Connection) -> None:
        try:
            while True:
                rows = await conn.fetch(
                    "SELECT wait_event_type, wait_event FROM pg_stat_activity WHERE datname = current_database()"
                    " AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
                    " AND state IN ('active', 'idle in transaction')")
                self.samples += 1
                for row in rows:
                    what = f"{row['wait_event_type']}:{row['wait_event']}" if row["wait_event_type"] else "CPU"
                    self.counts[what] = self.counts.get(what, 0) + 1
                await asyncio.sleep(self.every)
        finally:
            await conn.close()

    def shares(self, top: int = 4) -> dict[str, float]:
        """Busy sessions per sample, by what they waited on (the most frequent ``top``)."""
        ranked = sorted(self.counts.items(), key=lambda kv: -kv[1])[:top]
        return {what: round(n / max(self.samples, 1), 2) for what, n in ranked}


async def _count_statements(database_url: str) -> None:
    """pg_stat_statements in the scratch database when the server preloads it (``ops.bench --postgres``)."""
    conn = await _connect(database_url)
    try:
        if "pg_stat_statements" in await conn.fetchval("SELECT current_setting('shared_preload_libraries')"):
            await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    finally:
        await conn.close()
