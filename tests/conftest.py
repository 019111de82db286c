"""Real servers for the tests: Redis (redis-server) and PostgreSQL (initdb + pg_ctl).

Both are started once per session on free loopback ports in throwaway folders.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
from pg import Cluster
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


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL cluster for the session."""
    cluster = Cluster()
    cluster.start()
    yield cluster
    cluster.remove()


@pytest.fixture(scope="session")
def postgres_drops(postgres_server):
    """Drops the tests' databases one after another beside the next tests; waits for the last
    before the cluster goes. Deleting a few hundred databases' files at the end held the
    session's teardown for a minute or more (each unlink waits for the disk's discard)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pg-drop") as drops:
        yield drops


@pytest.fixture
def postgres_url(postgres_server, postgres_drops):
    """A fresh, empty database on the session server (``postgresql://`` URL), dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield postgres_server.create_database(name)
    # A process the test left behind may still be connected: FORCE ends its sessions. A drop
    # that fails anyway leaves the database to the cluster's removal.
    postgres_drops.submit(postgres_server.psql, f"DROP DATABASE {name} WITH (FORCE)")


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
