"""The IMAP poller role: N instances share M mailboxes, each held by one instance at a time.

Every instance announces itself in a sorted set; a live instance takes at most its fair
share (``ceil(M / live instances)``) of the mailboxes, each through a Redis lease renewed
while held. A dead instance's leases expire and its share is taken over by the others.
"""

from __future__ import annotations

import asyncio
import math
import os
import socket
from collections.abc import Awaitable, Callable

import structlog
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from connectors.email.imap.mailbox import LeaseLost, MailboxPoller
from connectors.email.tls import client_context
from core import keys, metrics
from core.accounts import ImapMailbox
from core.bus import Bus
from core.ids import new_id, now_ms
from core.lease import Lease
from core.settings import Settings

log = structlog.get_logger()
ROLE = "connector"
LoadMailboxes = Callable[[], Awaitable[list[ImapMailbox]]]


class ImapPoller:
    """Holds leases on its share of the IMAP mailboxes and runs a ``MailboxPoller`` for each."""

    def __init__(self, bus: Bus, settings: Settings, load: LoadMailboxes, owner: str | None = None) -> None:
        self.bus, self.settings, self.load = bus, settings, load
        self.redis = bus.redis
        self.owner = owner or f"imap-{socket.gethostname()}-{os.getpid()}-{new_id()[-6:].lower()}"
        self.held: dict[str, asyncio.Task] = {}
        self.mailboxes: list[ImapMailbox] = []

    async def run(self, stop: asyncio.Event) -> None:
        client_context(self.settings.imap_tls_ca)  # a CA file that cannot be read stops the role now
        log.info("imap.poller_started", owner=self.owner)
        try:
            while not stop.is_set():
                try:
                    await self.rebalance()
                except (RedisError, OSError, SQLAlchemyError) as exc:
                    log.warning("imap.rebalance_failed", error=str(exc))
                try:
                    await asyncio.wait_for(stop.wait(), self.settings.imap_refresh_s)
                except TimeoutError:
                    pass
        finally:
            await self._drop(list(self.held))
            try:
                await self.redis.zrem(keys.IMAP_INSTANCES, self.owner)
                await self.redis.delete(keys.heartbeat_key(ROLE, self.owner))
            except (RedisError, OSError):
                pass

    async def rebalance(self) -> None:
        """Refresh accounts and liveness; let go of surplus mailboxes, take free ones up to the share."""
        now = now_ms()
        ttl = self.settings.imap_lease_ms
        await self.redis.zadd(keys.IMAP_INSTANCES, {self.owner: now})
        await self._beat(now)
        await self.redis.zremrangebyscore(keys.IMAP_INSTANCES, "-inf", now - ttl)
        live = max(1, await self.redis.zcard(keys.IMAP_INSTANCES))
        try:
            self.mailboxes = await self.load()
        except SQLAlchemyError as exc:  # keep polling what we know
            log.warning("imap.accounts_unavailable", error=str(exc))
        wanted = {m.name: m for m in self.mailboxes}
        await self._drop([name for name, task in self.held.items() if task.done() or name not in wanted])
        share = math.ceil(len(wanted) / live)
        surplus = len(self.held) - share
        if surplus > 0:
            await self._drop(sorted(self.held)[:surplus])
        for name, mailbox in wanted.items():
            if len(self.held) >= share:
                break
            if name in self.held:
                continue
            lease = Lease(self.redis, keys.imap_lease_key(mailbox.account_id, mailbox.folder), self.owner, ttl)
            if await lease.acquire():
                self.held[name] = asyncio.create_task(self._hold(mailbox, lease), name=f"imap:{name}")

    async def _beat(self, now: int) -> None:
        """The heartbeat `switchboard ops check connector` looks for (TTL: three refreshes)."""
        key = keys.heartbeat_key(ROLE, self.owner)
        fields = {"at": str(now), "pid": str(os.getpid()), "held": str(len(self.held)),
                  "mailboxes": str(len(self.mailboxes))}
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(key, mapping=fields)
            pipe.pexpire(key, max(int(self.settings.imap_refresh_s * 3000), self.settings.imap_lease_ms))
            await pipe.execute()

    async def _hold(self, mailbox: ImapMailbox, lease: Lease) -> None:
        """Run the mailbox while renewing its lease every third of the lease time."""
        bound = log.bind(account=mailbox.account_id, folder=mailbox.folder, owner=self.owner)
        bound.info("imap.lease_acquired")
        metrics.IMAP_LEASE_HELD.labels(mailbox.name).set(1)
        worker = asyncio.create_task(MailboxPoller(self.bus, self.settings, mailbox, lease).run())
        try:
            while not worker.done():
                await asyncio.wait({worker}, timeout=lease.ttl_ms / 3000)
                if not worker.done() and not await lease.renew():
                    bound.warning("imap.lease_lost")
                    return
        except (RedisError, OSError) as exc:
            bound.warning("imap.lease_renew_failed", error=str(exc))
        finally:
            worker.cancel()
            results = await asyncio.gather(worker, return_exceptions=True)
            if isinstance(results[0], LeaseLost):
                bound.warning("imap.lease_lost")
            elif isinstance(results[0], Exception):
                bound.error("imap.mailbox_crashed", exc_info=results[0])
            try:
                await lease.release()
            except (RedisError, OSError):
                pass
            metrics.IMAP_LEASE_HELD.labels(mailbox.name).set(0)

    async def _drop(self, names: list[str]) -> None:
        tasks = [self.held.pop(n) for n in names if n in self.held]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
