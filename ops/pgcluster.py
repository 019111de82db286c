"""A throwaway PostgreSQL cluster (initdb + pg_ctl) on a free loopback port.

The tests start one per session and ``make chaos-pg`` one per run; the binaries come from
Debian's postgresql package (``make system-deps``).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ops.bench.harness import free_port


def pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if not path:
        raise RuntimeError(f"PostgreSQL's {name} not found; `make system-deps` installs postgresql")
    return path


def as_postgres(args: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root.
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


class Cluster:
    def __init__(self, preload: str = "") -> None:
        """``preload``: ``shared_preload_libraries`` (e.g. pg_stat_statements, for the bench)."""
        self.preload = preload
        self.folder = Path(tempfile.mkdtemp(prefix="sb-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        self.data = self.folder / "data"
        self.host, self.port = "127.0.0.1", free_port()
        subprocess.run(
            as_postgres([pg_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8"]),
            check=True, stdout=subprocess.DEVNULL,
        )

    def _ctl(self, action: str, *extra: str) -> list[str]:
        return as_postgres([pg_bin("pg_ctl"), "-D", str(self.data), *extra, "-w", action])

    def start(self) -> None:
        opts = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c max_connections=200" + (f" -c shared_preload_libraries={self.preload}" if self.preload else ""))
        subprocess.run(self._ctl("start", "-l", str(self.folder / "log"), "-o", opts), check=True,
                       stdout=subprocess.DEVNULL)

    def restart(self, mode: str = "fast") -> None:
        """Stop (``fast``: every session is disconnected, open transactions roll back) and start
        again with the options it was started with."""
        subprocess.run(self._ctl("restart", "-l", str(self.folder / "log"), "-m", mode), check=True,
                       stdout=subprocess.DEVNULL)

    def stop(self, mode: str = "fast") -> None:
        subprocess.run(self._ctl("stop", "-m", mode), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def psql(self, sql: str, database: str = "postgres") -> str:
        out = subprocess.run(["psql", "-h", self.host, "-p", str(self.port), "-U", "postgres", "-d", database,
                              "-tAqc", sql], check=True, capture_output=True, text=True)
        return out.stdout.strip()

    def create_database(self, name: str) -> str:
        """A fresh, empty database (``postgresql://`` URL)."""
        self.psql(f"CREATE DATABASE {name}")
        return f"postgresql://postgres@{self.host}:{self.port}/{name}"

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)
