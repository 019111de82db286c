"""A Redis lease: one holder at a time, identified by an owner token, renewed while held."""

from __future__ import annotations

import redis.asyncio as aioredis

# Renew and release only touch the key while it still holds our token: a holder that
# stalled past its lease must not extend or delete the next holder's lease.
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


class Lease:
    """``SET key token NX PX ttl``; renew/release are compare-and-act scripts on the token."""

    def __init__(self, redis: aioredis.Redis, key: str, owner: str, ttl_ms: int) -> None:
        self.redis = redis
        self.key = key
        self.owner = owner
        self.ttl_ms = ttl_ms
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    async def acquire(self) -> bool:
        return bool(await self.redis.set(self.key, self.owner, nx=True, px=self.ttl_ms))

    async def renew(self) -> bool:
        """Extend the lease; False when it is no longer ours (expired or taken over)."""
        return bool(await self._renew(keys=[self.key], args=[self.owner, self.ttl_ms]))

    async def release(self) -> bool:
        return bool(await self._release(keys=[self.key], args=[self.owner]))

    async def holder(self) -> str | None:
        value = await self.redis.get(self.key)
        return value.decode() if isinstance(value, bytes) else value
