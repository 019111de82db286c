"""Real servers for the tests: Redis (redis-server) and PostgreSQL (initdb + pg_ctl).

Both are started once per session on free loopback ports in throwaway folders.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest
import redis
from support import free_port, wait_for

from core.redis import redis_binary


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A real redis-server with AOF on; yields its base URL."""
    binary = shutil.which("redis-server") or redis_binary()
    port = free_port()
    folder = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
         "--appendonly", "yes", "--save", "", "--daemonize", "no", "--loglevel", "warning"],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)

    def up() -> bool:
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    wait_for(up, what="redis-server")
    yield f"redis://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def redis_url(redis_server):
    """The session Redis, emptied for this test."""
    redis.Redis.from_url(redis_server).flushall()
    return redis_server


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if not path:
        raise RuntimeError(f"PostgreSQL's {name} not found; `make test` installs postgresql")
    return path


def _as_postgres(args: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root.
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL cluster; yields (host, port)."""
    folder = Path(tempfile.mkdtemp(prefix="sb-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    data = folder / "data"
    port = free_port()
    subprocess.run(
        _as_postgres([_pg_bin("initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8"]),
        check=True, stdout=subprocess.DEVNULL,
    )
    opts = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    subprocess.run(
        _as_postgres([_pg_bin("pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-o", opts, "-w", "start"]),
        check=True, stdout=subprocess.DEVNULL,
    )
    yield "127.0.0.1", port
    subprocess.run(_as_postgres([_pg_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                   stdout=subprocess.DEVNULL)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """A fresh, empty database on the session server (``postgresql://`` URL)."""
    host, port = postgres_server
    name = f"t_{uuid.uuid4().hex[:12]}"
    subprocess.run(
        ["psql", "-h", host, "-p", str(port), "-U", "postgres", "-q", "-c", f"CREATE DATABASE {name}"],
        check=True,
    )
    return f"postgresql://postgres@{host}:{port}/{name}"


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'switchboard.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request) -> str:
    """Runs a test once on SQLite and once on PostgreSQL."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture(scope="session")
def dovecot():
    """A real Dovecot (dovecot-imapd) with a throwaway config; tests add their own users."""
    from dovecot import Dovecot

    server = Dovecot().start()
    yield server
    server.close()


@pytest.fixture
def imap_user(dovecot) -> str:
    """A fresh IMAP user (empty INBOX) on the session Dovecot."""
    return dovecot.add_user(f"u{uuid.uuid4().hex[:10]}@acme.test")
