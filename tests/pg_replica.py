"""A PostgreSQL streaming replica of a test cluster: ``pg_basebackup -R`` into a second data
folder, started on its own port, replaying the primary's WAL (hot standby)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from pg import Cluster, _as_postgres, pg_bin
from support import free_port, wait_for


def psql(host: str, port: int, db: str, sql: str) -> str:
    out = subprocess.run(["psql", "-h", host, "-p", str(port), "-U", "postgres", "-d", db, "-tAc", sql],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


class Replica:
    """A hot standby of ``primary`` (whose ``wal_level`` is ``replica``, PostgreSQL's default)."""

    def __init__(self, primary: Cluster) -> None:
        self.primary = primary
        self.folder = Path(tempfile.mkdtemp(prefix="sb-pg-replica-"))
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        self.data = self.folder / "data"
        self.host, self.port = "127.0.0.1", free_port()

    def start(self) -> Replica:
        # -R writes standby.signal and primary_conninfo: the copy starts as a standby of the primary.
        subprocess.run(
            _as_postgres([pg_bin("pg_basebackup"), "-D", str(self.data), "-R", "-X", "stream", "-c", "fast",
                          "-h", self.primary.host, "-p", str(self.primary.port), "-U", "postgres"]),
            check=True, stdout=subprocess.DEVNULL,
        )
        # A standby needs max_connections (and the like) at least the primary's (tests/pg.py: 200).
        opts = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c hot_standby=on -c max_connections=200")
        subprocess.run(
            _as_postgres([pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.folder / "log"), "-o", opts,
                          "-w", "start"]),
            check=True, stdout=subprocess.DEVNULL,
        )
        wait_for(lambda: psql(self.primary.host, self.primary.port, "postgres",
                              "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'") == "1",
                 what="the replica streaming")
        return self

    def url(self, db: str) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{db}"

    def caught_up(self) -> bool:
        """The replica has replayed everything the primary has written so far."""
        target = psql(self.primary.host, self.primary.port, "postgres", "SELECT pg_current_wal_lsn()")
        return psql(self.host, self.port, "postgres",
                    f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn") == "t"

    def wait_caught_up(self) -> None:
        wait_for(self.caught_up, what="the replica to replay the primary's WAL")

    def pause(self) -> None:
        """Stop replaying WAL (it is still received): the replica's data stays as it is now."""
        psql(self.host, self.port, "postgres", "SELECT pg_wal_replay_pause()")

    def resume(self) -> None:
        psql(self.host, self.port, "postgres", "SELECT pg_wal_replay_resume()")

    def remove(self) -> None:
        subprocess.run(_as_postgres([pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"]),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.folder, ignore_errors=True)
