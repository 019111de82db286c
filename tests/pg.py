"""A throwaway PostgreSQL cluster (initdb + pg_ctl) on a free loopback port."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from support import free_port


def pg_bin(name: str) -> str:
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


class Cluster:
    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="sb-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        self.data = self.folder / "data"
        self.host, self.port = "127.0.0.1", free_port()
        subprocess.run(
            _as_postgres([pg_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8"]),
            check=True, stdout=subprocess.DEVNULL,
        )

    def start(self) -> None:
        opts = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c max_connections=200")
        subprocess.run(
            _as_postgres([pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.folder / "log"), "-o", opts,
                          "-w", "start"]),
            check=True, stdout=subprocess.DEVNULL,
        )

    def stop(self, mode: str = "fast") -> None:
        subprocess.run(_as_postgres([pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"]),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def create_database(self, name: str) -> str:
        """A fresh, empty database (``postgresql://`` URL)."""
        subprocess.run(
            ["psql", "-h", self.host, "-p", str(self.port), "-U", "postgres", "-q", "-c", f"CREATE DATABASE {name}"],
            check=True,
        )
        return f"postgresql://postgres@{self.host}:{self.port}/{name}"

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)
