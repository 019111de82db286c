"""The Redis lease on real Redis: one holder, renew and release only by the owner."""

import redis.asyncio as aioredis

from core.lease import Lease


async def test_only_the_owner_renews_or_releases_and_an_expired_lease_is_free(redis_url):
    # A stalled holder whose lease expired and was taken must not extend or drop the new one.
    client = aioredis.Redis.from_url(redis_url)
    try:
        a = Lease(client, "sb:test:lease", "owner-a", ttl_ms=5000)
        b = Lease(client, "sb:test:lease", "owner-b", ttl_ms=5000)
        assert await a.acquire() is True
        assert await b.acquire() is False
        assert await b.renew() is False and await b.release() is False
        assert await a.holder() == "owner-a"
        assert await a.renew() is True and 4000 < await client.pttl("sb:test:lease") <= 5000
        await client.delete("sb:test:lease")  # as if it expired
        assert await b.acquire() is True
        assert await a.renew() is False and await a.release() is False
        assert await b.holder() == "owner-b"
        assert await b.release() is True and await b.holder() is None
    finally:
        await client.aclose()
