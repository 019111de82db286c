"""A real Redis Cluster for the tests: six redis-server nodes (3 masters, 3 replicas) on free ports.

Built the way an operator builds one: each node with ``--cluster-enabled yes`` and its own
``--cluster-config-file``, then ``redis-cli --cluster create ... --cluster-replicas 1``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import redis
from support import free_port, wait_for


class RedisClusterNodes:
    """Six nodes in ``folder``; ``node_timeout_ms`` small so a killed master fails over in seconds."""

    def __init__(self, folder: Path, node_timeout_ms: int = 1000) -> None:
        self.folder = folder
        self.node_timeout_ms = node_timeout_ms
        self.ports = [free_port() for _ in range(6)]
        self.bus_ports = {p: free_port() for p in self.ports}  # not port+10000: that may be out of range
        self.procs: dict[int, subprocess.Popen] = {}
        self._clients: dict[int, redis.Redis] = {}

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.ports[0]}"

    def start_node(self, port: int) -> None:
        home = self.folder / str(port)
        home.mkdir(exist_ok=True)
        self.procs[port] = subprocess.Popen(
            [shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
             "--cluster-enabled", "yes", "--cluster-config-file", str(home / "nodes.conf"),
             "--cluster-port", str(self.bus_ports[port]),
             "--cluster-node-timeout", str(self.node_timeout_ms), "--dir", str(home),
             "--appendonly", "yes", "--save", "", "--repl-diskless-sync-delay", "0",
             "--daemonize", "no", "--loglevel", "warning",
             "--logfile", str(home / "redis.log")],
            stdout=subprocess.DEVNULL,
        )
        wait_for(lambda: self._pings(port), what=f"redis-server on {port}")

    def start(self) -> RedisClusterNodes:
        for port in self.ports:
            self.start_node(port)
        subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
             "--cluster-replicas", "1", "--cluster-yes"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self.wait_healthy()
        return self

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Every live node says ``cluster_state:ok`` and every master has its replica in sync."""
        wait_for(self._healthy, timeout=timeout, interval=0.1, what="cluster_state:ok with replicas")

    def _healthy(self) -> bool:
        live = [p for p, proc in self.procs.items() if proc.poll() is None]
        if not all(self._client(p).cluster("info")["cluster_state"] == "ok" for p in live):
            return False
        masters = [p for p in live if self._client(p).info("replication")["role"] == "master"]
        return len(masters) == 3 and all(self._synced(p) for p in masters)

    def _synced(self, port: int) -> bool:
        info = self._client(port).info("replication")
        return info["connected_slaves"] >= 1 and all(
            info[f"slave{i}"]["state"] == "online" for i in range(info["connected_slaves"]))

    def master_of(self, key: str) -> int:
        """The port of the master owning ``key``'s slot, asked of a live node."""
        live = next(p for p, proc in self.procs.items() if proc.poll() is None)
        with redis.RedisCluster(host="127.0.0.1", port=live) as client:
            return client.get_node_from_key(key).port

    def kill(self, port: int) -> None:
        """SIGKILL: no shutdown, no last AOF flush, no goodbye to the other nodes."""
        proc = self.procs[port]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def wait_failover(self, old_master: int, key: str, timeout: float = 30.0) -> int:
        """Until another node owns ``key``'s slot and the cluster says ok; returns that master's port."""
        def promoted() -> int | None:
            try:
                port = self.master_of(key)
                live = [p for p, proc in self.procs.items() if proc.poll() is None]
                ok = all(self._client(p).cluster("info")["cluster_state"] == "ok" for p in live)
                return port if port != old_master and ok else None
            except (redis.RedisError, redis.exceptions.RedisClusterException):
                return None
        return wait_for(promoted, timeout=timeout, interval=0.1, what="failover")

    def _client(self, port: int) -> redis.Redis:
        if port not in self._clients:
            self._clients[port] = redis.Redis(port=port, socket_timeout=2, decode_responses=True)
        return self._clients[port]

    def _pings(self, port: int) -> bool:
        try:
            return bool(self._client(port).ping())
        except redis.ConnectionError:
            return False

    def stop(self) -> None:
        for client in self._clients.values():
            client.close()
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)
