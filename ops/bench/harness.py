"""Start a throwaway system (Redis with AOF, a database, role processes) for a benchmark."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from core.redis import redis_binary
from ticket_service.store import admin
from ticket_service.store.db import Database, migrate

SUPPORT = "bench@example.com"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class System:
    """Redis on a free port (appendonly, everysec), SQLite or DATABASE_URL, and role processes."""

    def __init__(self, database_url: str | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="sb-bench-"))
        self.redis_port = free_port()
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.database_url = database_url or f"sqlite:///{self.dir / 'bench.db'}"
        self.smtp_port = free_port()
        self.procs: list[subprocess.Popen] = []

    def env(self, **settings: object) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
        env.update(REDIS_URL=self.redis_url, DATABASE_URL=self.database_url,
                   SWITCHBOARD_DATA_DIR=str(self.dir / "data"), SWITCHBOARD_LOG_LEVEL="warning",
                   SWITCHBOARD_SMTP_PORT=str(self.smtp_port), SWITCHBOARD_DEMO="false")
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
        self.start_redis()
        db = Database(self.database_url)
        await migrate(db)
        async with db.write() as conn:
            tenant = await admin.create_tenant(conn, "bench")
            account = await admin.add_account(conn, tenant, "email", SUPPORT)
        await db.dispose()
        return account

    def role(self, name: str, **settings: object) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-m", "ops.cli", name], env=self.env(**settings),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        return proc

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
        for proc in [*self.procs, self.redis]:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in [*self.procs, self.redis]:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
