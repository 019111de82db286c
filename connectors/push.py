"""What every HTTP push channel shares: the gateway's context, rejections, bodies, accounts.

A push route verifies cheaply, wraps the raw body in an Envelope, XADDs it and answers;
``Reject`` is a sender's fault answered with its status and a JSON body naming the problem.
"""

from __future__ import annotations

import functools
import hashlib
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import redis.asyncio as aioredis
import structlog
from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from core import keys, metrics
from core.accounts import Account, Accounts
from core.blobs import BlobStore
from core.bus import Bus
from core.envelope import Envelope
from core.history import History
from core.json_http import json_response
from core.redis import REDIS_ERRORS
from core.settings import Settings

log = structlog.get_logger()

DEFAULT_MAX_BODY = 64 * 1024  # a WeChat/Weibo push or an SDK message is a few KiB at most
DEFAULT_MAX_SKEW_S = Settings().push_max_skew_s


@dataclass(slots=True)
class Gateway:
    """The state push routes need: the bus, account lookups, stored-message reads, blobs, settings."""

    bus: Bus
    accounts: Accounts
    history: History
    blobs: BlobStore
    max_skew_s: int = DEFAULT_MAX_SKEW_S  # signed timestamps further from now are refused

    @property
    def redis(self) -> aioredis.Redis:
        return self.bus.redis


GATEWAY = web.AppKey("gateway", Gateway)


class Reject(Exception):
    """A sender's fault: HTTP status, a stable reason (also the metric label) and a message."""

    def __init__(self, status: int, reason: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.reason, self.message, self.headers = status, reason, message, headers or {}


def count(channel: str, outcome: str, reason: str = "") -> None:
    metrics.INGRESS.labels(channel, outcome, reason).inc()


def error_body(reason: str, message: str) -> dict:
    return {"error": {"code": reason, "message": message}}


Handler = Callable[[web.Request, Gateway], Awaitable[web.StreamResponse]]


def push_route(channel: str) -> Callable[[Handler], Callable[[web.Request], Awaitable[web.StreamResponse]]]:
    """Wrap a handler: ``Reject`` -> its JSON answer; Redis/DB down -> 503; all counted."""

    def wrap(handler: Handler):
        @functools.wraps(handler)
        async def route(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request, request.app[GATEWAY])
            except Reject as exc:
                log.info("push.rejected", channel=channel, status=exc.status, reason=exc.reason,
                         path=request.path)
                count(channel, "rejected", exc.reason)
                return json_response(error_body(exc.reason, exc.message), status=exc.status,
                                         headers=exc.headers)
            except (*REDIS_ERRORS, SQLAlchemyError, OSError):
                # Our fault: the sender keeps the message and retries (WeChat, Weibo and the SDK do).
                log.error("push.unavailable", channel=channel, path=request.path, exc_info=True)
                count(channel, "rejected", "unavailable")
                return json_response(error_body("unavailable", "try again later"), status=503,
                                         headers={"Retry-After": "5"})

        return route

    return wrap


async def account_for(gw: Gateway, channel: str, address: str) -> Account:
    account = await gw.accounts.by_address(channel, address)
    if account is None:
        raise Reject(404, "unknown_account", f"no {channel} account {address!r}")
    return account


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body, refusing anything over ``limit`` bytes without reading all of it."""
    if request.content_length is not None and request.content_length > limit:
        raise Reject(413, "too_large", f"body of {request.content_length} bytes exceeds {limit}")
    chunks, size = [], 0
    while chunk := await request.content.read(64 * 1024):  # returns what has arrived, up to n
        size += len(chunk)
        if size > limit:
            raise Reject(413, "too_large", f"body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def setting_int(account: Account, name: str, default: int) -> int:
    value = account.settings.get(name, default)
    return int(value) if isinstance(value, int | str) and str(value).isdigit() else default


def envelope(account: Account, channel: str, payload: bytes, content_type: str, request: web.Request,
             **meta: str) -> Envelope:
    return Envelope(
        tenant=account.tenant_slug, channel=channel, account=str(account.id), payload=payload,
        content_type=content_type, meta={"remote_addr": request.remote or "", **meta},
    )


async def publish(gw: Gateway, stream: str, env: Envelope, channel: str) -> str:
    """XADD, then count it accepted: the answer may leave only after this returned."""
    entry = await gw.bus.publish(stream, env)
    log.info("push.accepted", channel=channel, envelope_id=env.id, tenant=env.tenant, size=len(env.payload))
    count(channel, "accepted")
    return entry


def clock_s() -> int:
    return int(time.time())


def check_timestamp(raw: str, max_skew_s: int, per_second: int = 1) -> None:
    """Refuse a signed timestamp further than ``max_skew_s`` from our clock.

    WeChat's and Weibo's signatures never expire by themselves, so without this a signature
    seen once verifies forever. ``per_second``: 1000 for a channel that signs milliseconds.
    """
    if not raw.isascii() or not raw.isdigit() or len(raw) > 16:
        raise Reject(400, "bad_timestamp", "timestamp is not a number")
    skew = abs(clock_s() - int(raw) // per_second)
    if skew > max_skew_s:
        raise Reject(401, "stale_timestamp", f"timestamp is {skew} s off the server clock (limit {max_skew_s} s)")


async def remember_nonce(gw: Gateway, account: Account, timestamp: str, nonce: str, body: bytes) -> None:
    """Record a verified (timestamp, nonce) with the body's hash; refuse it with another body.

    Call only after the signature verified, so no one without the secret can use up nonces.
    The record lives as long as the timestamp can pass ``check_timestamp`` (``2 * max_skew_s``
    from the first use at worst). The same triple with the same body is the platform resending
    (enqueued again and deduplicated by the store: answering it without an XADD could lose a
    push whose first attempt failed after this record); with another body it is a forgery
    built on a signature seen before: 409 ``replayed``.
    """
    key = keys.push_nonce_key(account.id, timestamp, nonce)
    digest = hashlib.sha256(body).hexdigest().encode()
    async with gw.redis.pipeline(transaction=True) as pipe:
        pipe.set(key, digest, nx=True, ex=2 * gw.max_skew_s + 1)
        pipe.get(key)
        first, seen = await pipe.execute()
    if seen is not None and seen != digest:
        raise Reject(409, "replayed", "this signed timestamp and nonce were already used for another push")
    if not first:
        log.info("push.resent", channel=account.channel, account=account.id)


RECEIPT_TTL_S = 30 * 24 * 3600


def receipt_token() -> str:
    """A receipt: 192 random bits, URL-safe (32 characters); nothing about it follows from another.

    Not the envelope id: ULIDs issued in one millisecond count up, and ``/receipts/{id}`` is public.
    """
    return secrets.token_urlsafe(24)


async def issue_receipt(gw: Gateway, env: Envelope, account: Account, dedup_key: str) -> str:
    """A new receipt token and what it resolves through; written before the XADD.

    ``dedup_key`` must be short enough to be stored as is (under 255 characters).
    """
    receipt = receipt_token()
    doc = json.dumps({"tenant_id": account.tenant_id, "channel": env.channel, "dedup_key": dedup_key,
                      "envelope_id": env.id})
    await gw.redis.set(keys.receipt_key(receipt), doc, ex=RECEIPT_TTL_S)
    return receipt


async def rate_limit(gw: Gateway, scope: str, limit: int, what: str, window_s: int = 60) -> None:
    """Fixed-window counter in Redis shared by every gateway replica; 429 over ``limit``."""
    now = time.time()
    window = int(now // window_s)
    key = keys.rate_key(scope, window)
    async with gw.redis.pipeline(transaction=True) as pipe:
        pipe.incr(key)
        pipe.expire(key, window_s + 1)
        used, _ = await pipe.execute()
    if used > limit:
        retry = max(1, int((window + 1) * window_s - now + 0.999))
        raise Reject(429, "rate_limited", f"more than {limit} requests per {window_s} s {what}",
                     {"Retry-After": str(retry)})
