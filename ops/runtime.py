"""What one role process holds: Redis (embedded or URL), the database, blobs and the bus."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from connectors.registry import DEFAULT, capacity_classes, registry, secret_channels
from core.blobs import BlobStore
from core.bus import Bus
from core.channel import Channel
from core.redis import EmbeddedRedis, connect, redis_url
from core.settings import Settings
from ops.health import Health
from ticket_service.store.db import Database, migrate
from ticket_service.store.directory import AccountDirectory
from ticket_service.store.history import StoredHistory


class Runtime:
    def __init__(self, settings: Settings, channels: Iterable[Channel] = DEFAULT) -> None:
        """``channels``: what this process serves, parses and routes (the registry's by default)."""
        self.settings = settings
        self.embedded: EmbeddedRedis | None = None
        self.channels = registry(channels)
        self.classes = capacity_classes(self.channels)

    async def start(self) -> Runtime:
        s = self.settings
        private_data_dir(s.data_dir)
        if not s.database_url:
            private_file(s.data_dir / "switchboard.db")
        url, self.embedded = redis_url(s)
        self.redis = connect(url)
        self.db = Database(s.effective_database_url, read_url=s.database_read_url)
        await migrate(self.db)
        self.blobs = BlobStore(s.blob_dir)
        self.bus = Bus(self.redis, self.blobs, s.blob_threshold, s.redis_wait_replicas, s.redis_wait_timeout_ms)
        self.health = Health(self.redis, self.db, stall_s=max(15.0, 3 * s.block_ms / 1000))
        self.history = StoredHistory(self.db)
        self._accounts: AccountDirectory | None = None
        return self

    @property
    def accounts(self) -> AccountDirectory:
        """The process's one account directory, shared by its roles (the gateway, SMTP, IMAP and
        the normalizer). Made on first use: ``run`` settles the secret key after ``start``."""
        if self._accounts is None:
            s = self.settings
            self._accounts = AccountDirectory(self.db, s.account_cache_s, s.secret_key, secret_channels(self.channels))
        return self._accounts

    async def close(self) -> None:
        await self.bus.aclose()
        await self.redis.aclose()
        await self.db.dispose()
        if self.embedded:
            self.embedded.stop()

    async def __aenter__(self) -> Runtime:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.close()


def private_data_dir(path: Path) -> None:
    """The data folder holds raw mail, the database and keys: only its owner may enter it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.stat()
    if st.st_uid == os.getuid() and st.st_mode & 0o077:
        os.chmod(path, st.st_mode & 0o700)  # a folder made by an older version (0755) is closed too


def private_file(path: Path) -> None:
    """Create ``path`` 0600 if absent; SQLite gives its -wal and -shm files the database's mode."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
