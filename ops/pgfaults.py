"""PostgreSQL's own faults for ``make chaos-pg``: the roles' sessions terminated, the server restarted.

Both hit every role at once, mid-transaction: ``pg_terminate_backend`` ends each session
(the backend exits, the client sees the connection close); ``pg_ctl restart -m fast``
disconnects every session, rolls back what was open and refuses connections until it is
up again. The roles must reconnect and redo the batch (the store's dedup makes the redo
exact), and the ingress must keep accepting since it only needs Redis.
"""

from __future__ import annotations

import asyncio

import asyncpg
from sqlalchemy.engine import make_url

from ops.pgcluster import Cluster


async def terminate_backends(url: str) -> int:
    """``pg_terminate_backend`` every other session on the database ``url`` names; how many went."""
    u = make_url(url)
    conn = await asyncpg.connect(host=u.host or "127.0.0.1", port=u.port or 5432, user=u.username,
                                 password=u.password, database=u.database)
    try:
        return await conn.fetchval(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()) AS ended")
    finally:
        await conn.close()


class PostgresFaults:
    """When, in a run of ``kills`` role kills, to terminate the sessions and restart the server.

    A fault falls due at its share of the kills and fires at the first kill after that when
    the database lock is not being held (a fault during the lock would only cut it short);
    what is still due when the kills end fires then, while the load still runs. The restart
    needs the server's own ``pg_ctl``: only a cluster this run started is restarted.
    """

    def __init__(self, url: str, cluster: Cluster | None, kills: int, terminations: int) -> None:
        self.url, self.cluster = url, cluster
        # Spread over the run: 1/(n+2), 2/(n+2)...; the restart at three quarters.
        self.due = sorted([("terminate", kills * (i + 1) // (terminations + 2)) for i in range(terminations)]
                          + ([("restart", kills * 3 // 4)] if cluster else []), key=lambda f: f[1])
        self.sessions_terminated = self.terminations = self.restarts = 0

    def after_kill(self, kills: int, lock_held: bool) -> None:
        while self.due and self.due[0][1] <= kills and not lock_held:
            self._fire(self.due.pop(0)[0])

    def finish(self) -> None:
        while self.due:
            self._fire(self.due.pop(0)[0])

    def _fire(self, fault: str) -> None:
        if fault == "restart":
            self.cluster.restart("fast")
            self.restarts += 1
        else:
            self.sessions_terminated += asyncio.run(terminate_backends(self.url))
            self.terminations += 1

    def summary(self) -> dict:
        return {"pg_restarts": self.restarts, "pg_terminations": self.terminations,
                "pg_sessions_terminated": self.sessions_terminated}
