"""What every HTTP sender shares: calls with a deadline, network faults as temporary failures,
and the parts of a multi-part reply a platform already accepted (so a retry sends only the rest).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from core import keys
from core.outbound import TemporaryFailure

TIMEOUT = aiohttp.ClientTimeout(total=15, connect=5)
PARTS_TTL_S = 7 * 24 * 3600  # longer than any retry schedule of one outbox row


async def request(http: aiohttp.ClientSession, method: str, url: str, what: str,
                  **kwargs: Any) -> tuple[int, bytes]:
    """(status, body) of one call; no answer at all is a TemporaryFailure naming ``what``."""
    try:
        async with http.request(method, url, timeout=TIMEOUT, **kwargs) as resp:
            return resp.status, await resp.read()
    except TimeoutError:
        raise TemporaryFailure("timeout", f"{what} did not answer within {TIMEOUT.total:g} s") from None
    except (aiohttp.ClientError, OSError, asyncio.IncompleteReadError) as exc:
        raise TemporaryFailure("network", f"{what} unreachable: {exc.__class__.__name__}: {exc}") from None


def json_object(status: int, body: bytes, what: str) -> dict:
    """The JSON object a platform answered; a 5xx or a non-JSON answer is worth another try."""
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        value = None
    if isinstance(value, dict):
        return value
    if status >= 500 or status == 429:
        raise TemporaryFailure(f"http_{status}", f"{what} answered HTTP {status}: {snippet(body)}")
    raise TemporaryFailure("bad_answer", f"{what} answered HTTP {status} without a JSON object: {snippet(body)}")


def snippet(body: bytes, limit: int = 200) -> str:
    text = body.decode("utf-8", "replace").strip()
    return text if len(text) <= limit else text[:limit] + "…"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Parts:
    """Parts of one outbox row's reply already accepted, kept in Redis across retries and replicas."""

    def __init__(self, redis: Any, channel: str, outbox_id: int) -> None:
        self.redis, self.key = redis, keys.outbound_parts_key(channel, outbox_id)

    async def done(self) -> dict[str, str]:
        return {_text(k): _text(v) for k, v in (await self.redis.hgetall(self.key)).items()}

    async def mark(self, part: str, platform_id: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.key, part, platform_id)
            pipe.expire(self.key, PARTS_TTL_S)
            await pipe.execute()
