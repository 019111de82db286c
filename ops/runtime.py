"""What one role process holds: Redis (embedded or URL), the database, blobs and the bus."""

from __future__ import annotations

from core.blobs import BlobStore
from core.bus import Bus
from core.redis import EmbeddedRedis, connect, redis_url
from core.settings import Settings
from ops.health import Health
from ticket_service.store.db import Database, migrate


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.embedded: EmbeddedRedis | None = None

    async def start(self) -> Runtime:
        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        url, self.embedded = redis_url(s)
        self.redis = connect(url)
        self.db = Database(s.effective_database_url)
        await migrate(self.db)
        self.blobs = BlobStore(s.blob_dir)
        self.bus = Bus(self.redis, self.blobs, s.blob_threshold)
        self.health = Health(self.redis, self.db, stall_s=max(15.0, 3 * s.block_ms / 1000))
        return self

    async def close(self) -> None:
        await self.redis.aclose()
        await self.db.dispose()
        if self.embedded:
            self.embedded.stop()

    async def __aenter__(self) -> Runtime:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.close()
