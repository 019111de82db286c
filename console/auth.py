"""Console sign-in: Argon2id passwords, the signed-in user, role checks, sign-in limits.

Sign-out revokes the session id in Redis until the cookie would have expired; a new
password ends every older session (the cookie carries a fingerprint of the hash), and so
does disabling the agent (``switchboard user disable``): every request reads the agent again,
and the sessions from before a disable stay ended once it is enabled.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import argon2
from aiohttp import web
from redis.asyncio import Redis

from console import render
from console.render import USER
from console.session import CONFIG, ConsoleConfig, csrf_ok, read_session
from core import keys
from core.ids import now_ms
from ticket_service.store import agents as agents_store
from ticket_service.store import users
from ticket_service.store.db import Database

ROLE_RANK = {role: n for n, role in enumerate(users.ROLES)}  # agent < supervisor < admin
_HASHER = argon2.PasswordHasher()  # Argon2id with RFC 9106's second recommended parameters


def _unmatchable_hash(hasher: argon2.PasswordHasher) -> str:
    """An encoded hash with the hasher's parameters whose salt and digest are random bytes: no
    password matches it, and verifying one against it costs what verifying a real one costs
    (the cost is in the parameters, not in the digest). Built rather than hashed: every role
    process and CLI call imports this module, and a real hash spends ~0.2 s of CPU and 64 MiB
    at start on a value only a failed sign-in reads."""
    def b64(size: int) -> str:
        return base64.b64encode(secrets.token_bytes(size)).decode().rstrip("=")

    return (f"$argon2{hasher.type.name.lower()}$v={argon2.low_level.ARGON2_VERSION}"
            f"$m={hasher.memory_cost},t={hasher.time_cost},p={hasher.parallelism}"
            f"${b64(hasher.salt_len)}${b64(hasher.hash_len)}")


# Verified when no agent has the email, so a miss costs as much time as a wrong password.
_DUMMY_HASH = _unmatchable_hash(_HASHER)
MIN_PASSWORD = 8
DB = web.AppKey("console_db", Database)
REDIS = web.AppKey("console_redis", Redis)


@dataclass(frozen=True, slots=True)
class User:
    """The signed-in agent, as the pages need it."""

    id: int
    tenant_id: int
    tenant_slug: str
    name: str
    email: str
    role: str
    timezone: str
    session: dict

    def can(self, role: str) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"a password needs at least {MIN_PASSWORD} characters")
    return _HASHER.hash(password)


def _check(stored: str | None, password: str) -> bool:
    try:
        return _HASHER.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
        return False


async def check_password(stored: str | None, password: str) -> bool:
    """Argon2 takes tens of milliseconds of CPU: off the event loop."""
    return await asyncio.to_thread(_check, stored, password)


def fingerprint(password_hash: str | None) -> str:
    return hashlib.sha256((password_hash or "").encode()).hexdigest()[:16]


async def current_user(request: web.Request) -> User | None:
    session = read_session(request)
    if "u" not in session or "t" not in session:
        return None
    revoked, ended = await request.app[REDIS].mget(keys.console_revoked_key(str(session.get("s", ""))),
                                                   keys.console_ended_key(int(session["u"])))
    if revoked is not None or (ended is not None and int(session.get("i", 0)) <= int(ended)):
        return None
    async with request.app[DB].read() as conn:
        row = await conn.run_sync(users.by_id, session["t"], session["u"])
    if (row is None or row.role not in ROLE_RANK or row.status == agents_store.DISABLED
            or fingerprint(row.password_hash) != session.get("p")):
        return None
    timezone = (row.tenant_settings or {}).get("timezone") or "UTC"
    return User(row.id, row.tenant_id, row.tenant_slug, row.name, row.email, row.role, timezone, session)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def signed_in(role: str = "agent", form: bool = False) -> Callable[[Handler], Handler]:
    """Run the page for a signed-in user of at least ``role``; a form POST needs its CSRF token.

    No session: a GET goes to the sign-in page, anything else is 401. Too low a role: 404,
    as for a page that does not exist.
    """
    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def page(request: web.Request) -> web.StreamResponse:
            if form and not csrf_ok(request, await request.post()):
                return render.error(request, 403, "error.csrf")
            user = await current_user(request)
            if user is None:
                if request.method != "GET" or request.path == "/events":
                    return render.error(request, 401, "error.signed_out")
                raise web.HTTPSeeOther(render.login_url(request.path_qs))
            if not user.can(role):
                return render.error(request, 404, "error.not_found")
            request[USER] = user
            return await handler(request)
        return page
    return wrap


class LoginLimits:
    """Failed sign-ins per email and per address in fixed windows of Redis counters."""

    def __init__(self, redis: Redis, config: ConsoleConfig) -> None:
        self.redis, self.config = redis, config

    def _keys(self, email: str, address: str, now: float) -> list[str]:
        window = int(now // self.config.login_window_s)
        who = hashlib.sha256(email.encode()).hexdigest()  # no email addresses in key names
        return [keys.console_login_key("email", who, window), keys.console_login_key("addr", address, window)]

    async def blocked(self, email: str, address: str, now: float) -> bool:
        by_email, by_addr = await self.redis.mget(self._keys(email, address, now))
        return (int(by_email or 0) >= self.config.login_limit
                or int(by_addr or 0) >= self.config.login_limit_addr)

    async def failed(self, email: str, address: str, now: float) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in self._keys(email, address, now):
                pipe.incr(key)
                pipe.expire(key, self.config.login_window_s + 60)
            await pipe.execute()


async def authenticate(db: Database, email: str, password: str):
    """The agent row this email and password sign in as (an email in two tenants: the first
    whose password matches), or None. A disabled agent's password is checked all the same, so
    its refusal looks and takes as long as a wrong password's."""
    async with db.read() as conn:
        rows = await conn.run_sync(users.by_email, email)
    for row in rows or [None]:
        ok = await check_password(row.password_hash if row is not None else None, password)
        if ok and row is not None and row.role in ROLE_RANK and row.status != agents_store.DISABLED:
            return row
    return None


def new_session(row, csrf: str) -> dict:
    return {"u": row.id, "t": row.tenant_id, "p": fingerprint(row.password_hash), "c": csrf,
            "s": secrets.token_urlsafe(16), "i": now_ms()}


async def end_sessions(redis: Redis, agent_id: int, session_s: int) -> None:
    """End every session the agent signed in before now, for good (``switchboard user disable``):
    while it is disabled its status refuses them anyway; this keeps them ended once enabled."""
    await redis.set(keys.console_ended_key(agent_id), now_ms(), ex=session_s + 60)


async def revoke(request: web.Request, session: dict) -> None:
    if session.get("s"):
        await request.app[REDIS].set(keys.console_revoked_key(str(session["s"])), 1,
                                     ex=request.app[CONFIG].session_s)
