"""API keys: ``Authorization: Bearer <key>`` resolved to a tenant, per route (no middleware)."""

from __future__ import annotations

import functools
import time

from aiohttp import web

from ticket_service.api.errors import ApiError, Handler, json_errors
from ticket_service.store import admin
from ticket_service.store.db import Database

_MAX_KEY_LENGTH = 200  # real keys are ~46 characters; longer ones are rejected without a query
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="switchboard"'}  # RFC 6750 §3


class TenantKeys:
    """API key -> tenant id. Hits are remembered for ``ttl`` seconds; misses always ask the DB."""

    def __init__(self, db: Database, ttl: float = 30.0, max_entries: int = 1024) -> None:
        self.db, self.ttl, self.max_entries = db, ttl, max_entries
        # Keyed by the key's hash so plaintext keys do not sit in memory.
        self._hits: dict[str, tuple[int, float]] = {}

    async def tenant(self, key: str) -> int | None:
        digest = admin.hash_key(key)
        now = time.monotonic()
        hit = self._hits.get(digest)
        if hit and hit[1] > now:
            return hit[0]
        async with self.db.read() as conn:
            tenant = await admin.tenant_for_key(conn, key)
        if tenant is None:
            self._hits.pop(digest, None)
            return None
        if len(self._hits) >= self.max_entries:
            self._prune(now)
        self._hits[digest] = (tenant, now + self.ttl)
        return tenant

    def _prune(self, now: float) -> None:
        self._hits = {k: v for k, v in self._hits.items() if v[1] > now}
        while len(self._hits) >= self.max_entries:
            del self._hits[next(iter(self._hits))]  # oldest insertion first


TENANT_KEYS = web.AppKey("api_tenant_keys", TenantKeys)


def bearer_key(request: web.Request) -> str | None:
    """The key from ``Authorization: Bearer <key>`` (scheme case-insensitive, RFC 7235 §2.1)."""
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key or len(key) > _MAX_KEY_LENGTH:
        return None
    return key


def authenticated(handler: Handler) -> Handler:
    """Run ``handler(request, tenant_id)`` only for a valid key; else answer a JSON 401."""

    @json_errors
    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        key = bearer_key(request)
        tenant = await request.app[TENANT_KEYS].tenant(key) if key else None
        if tenant is None:
            raise ApiError(401, "unauthorized", "missing or invalid API key", _CHALLENGE)
        return await handler(request, tenant)

    return wrapper
