"""The WeChat official account API, as a sender uses it: one access_token per account shared by
every replica through Redis, calls answered in WeChat's ``errcode``/``errmsg``.

Official account docs, "Get access token": a token lasts ``expires_in`` seconds (7200) and a
new fetch replaces the old one after a short overlap, so central storage is required and
replicas must not fetch concurrently. Errcodes 40001, 40014 and 42001 mean the token is
invalid or expired: drop it, fetch a new one, try once more.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from redis.exceptions import LockError
from wechatpy.constants import WeChatErrorCode as Code

from connectors.delivery import json_object, request
from core import keys
from core.outbound import OutboundFile, PermanentFailure, TemporaryFailure

DEFAULT_API_BASE = "https://api.weixin.qq.com"
TOKEN_ERRORS = frozenset({Code.INVALID_CREDENTIAL, Code.INVALID_ACCESS_TOKEN, Code.EXPIRED_ACCESS_TOKEN})
# -1 system busy, 45009 API call quota reached, 45047 customer-service message count limit.
RATE_LIMITS = {Code.SYSTEM_BUSY: 5.0, Code.OUT_OF_API_FREQ_LIMIT: 60.0, Code.OUT_OF_RESPONSE_COUNT_LIMIT: 300.0}
REFRESH_AT = 0.9  # keep a token for 90 % of expires_in, so none is used in its last minutes
LOCK_S = 10  # the fetching replica's hold on the lock; others wait for its token this long

# Compare-and-delete: drop the stored token only if it is still the one WeChat refused, so a
# token another replica already renewed is kept.
_DROP_IF_SAME = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


class WeChatError(Exception):
    """A non-zero ``errcode`` with WeChat's ``errmsg``."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"{errcode} {errmsg}")
        self.errcode, self.errmsg = errcode, errmsg


def failure(err: WeChatError) -> TemporaryFailure | PermanentFailure:
    """What the sender records for an errcode: rate limits and busy are retried, the rest is final."""
    if err.errcode in RATE_LIMITS:
        return TemporaryFailure(str(err.errcode), err.errmsg, retry_after_s=RATE_LIMITS[err.errcode])
    return PermanentFailure(str(err.errcode), err.errmsg)


@dataclass(frozen=True, slots=True)
class Credentials:
    account_id: int
    appid: str
    secret: str
    api_base: str = DEFAULT_API_BASE

    @classmethod
    def from_settings(cls, account_id: int, settings: Mapping[str, Any]) -> Credentials:
        appid, secret = str(settings.get("appid", "")), str(settings.get("app_secret", ""))
        if not appid or not secret:
            raise PermanentFailure("not_configured", "the WeChat account needs its appid and app_secret settings to send")
        base = str(settings.get("api_base") or DEFAULT_API_BASE).rstrip("/")
        return cls(account_id, appid, secret, base)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Client:
    """Calls on one account's behalf with the shared access_token."""

    def __init__(self, redis: Any, http: aiohttp.ClientSession, creds: Credentials) -> None:
        self.redis, self.http, self.creds = redis, http, creds
        self.key = keys.wechat_token_key(creds.account_id)

    async def token(self) -> str:
        """The account's access_token: the stored one, else one fetched by a single replica."""
        stored = await self.redis.get(self.key)
        if stored:
            return _text(stored)
        try:
            async with self.redis.lock(keys.wechat_token_lock_key(self.creds.account_id),
                                       timeout=LOCK_S, blocking_timeout=LOCK_S):
                stored = await self.redis.get(self.key)  # fetched by the replica we waited for
                return _text(stored) if stored else await self._fetch()
        except LockError:
            raise TemporaryFailure("token_lock", "another sender held the access_token fetch too long") from None

    async def _fetch(self) -> str:
        query = {"grant_type": "client_credential", "appid": self.creds.appid, "secret": self.creds.secret}
        answer = await self._answer("GET", "/cgi-bin/token", params=query)
        token, expires_in = str(answer.get("access_token", "")), int(answer.get("expires_in", 0) or 0)
        if not token or expires_in <= 0:
            raise TemporaryFailure("bad_answer", "WeChat's token answer had no access_token/expires_in")
        await self.redis.set(self.key, token, ex=max(1, int(expires_in * REFRESH_AT)))
        return token

    async def invalidate(self, token: str) -> None:
        await self.redis.eval(_DROP_IF_SAME, 1, self.key, token)

    async def call(self, path: str, *, body: Mapping[str, Any] | None = None,
                   upload: OutboundFile | None = None, params: Mapping[str, str] | None = None) -> dict:
        """POST ``body`` as JSON (or ``upload`` as multipart ``media``); a refused token is renewed once."""
        renewed = False
        while True:
            token = await self.token()
            query = {**(params or {}), "access_token": token}
            try:
                if upload is not None:
                    form = aiohttp.FormData()
                    form.add_field("media", upload.data, filename=upload.filename, content_type=upload.content_type)
                    return await self._answer("POST", path, params=query, data=form)
                # ensure_ascii=False: WeChat shows \\uXXXX escapes literally in some clients.
                data = json.dumps(body, ensure_ascii=False).encode()
                return await self._answer("POST", path, params=query, data=data,
                                          headers={"Content-Type": "application/json; charset=utf-8"})
            except WeChatError as err:
                if err.errcode not in TOKEN_ERRORS or renewed:
                    raise
                renewed = True
                await self.invalidate(token)

    async def _answer(self, method: str, path: str, **kwargs: Any) -> dict:
        what = f"WeChat {path}"
        status, raw = await request(self.http, method, self.creds.api_base + path, what, **kwargs)
        answer = json_object(status, raw, what)
        errcode = int(answer.get("errcode", 0) or 0)
        if errcode:
            raise WeChatError(errcode, str(answer.get("errmsg", "")))
        return answer
