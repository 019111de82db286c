"""What sender tests share: an Outgoing with defaults and the context a sender worker gives."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from core.outbound import Outgoing
from core.settings import load


@dataclasses.dataclass
class Context:
    redis: Any
    http: aiohttp.ClientSession
    settings: Any


@asynccontextmanager
async def send_context(redis_url: str) -> AsyncIterator[Context]:
    """A real Redis client and a real aiohttp session, as one sender replica has them."""
    client = aioredis.Redis.from_url(redis_url)
    async with aiohttp.ClientSession() as http:
        yield Context(client, http, load(env={}))
    await client.aclose()


def outgoing(channel: str, settings: dict, to: str, **fields: Any) -> Outgoing:
    values: dict[str, Any] = dict(
        outbox_id=1, tenant_id=1, tenant="acme", ticket_id=7, ticket_number=1042, message_id=11,
        channel=channel, account_id=3, account_address="acme-service", account_settings=settings,
        to=to, to_name="Li Lei", subject="Where is my order?", text="Your parcel left the depot today.",
        html="",
    )
    values.update(fields)
    return Outgoing(**values)
