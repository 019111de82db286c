"""One webhook attempt over HTTP: the signature, the POST, what the receiver answered.

The connection goes to the address that was checked: for a tenant without private targets
the resolver itself refuses a name with any non-public address (``ticket_service.webhook_url``),
and aiohttp connects to what the resolver returned. Redirects are not followed (a receiver
could otherwise send us anywhere), and at most ``SNIPPET`` bytes of the answer are read.
"""

from __future__ import annotations

import hashlib
import hmac
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from ticket_service.webhook_url import literal, refusal

SNIPPET = 512  # bytes of a receiver's answer kept with a failed attempt
USER_AGENT = "Switchboard-Webhooks/1"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">``: the timestamp is signed too, so a
    receiver can refuse an old request replayed to it."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


class RefusedAddress(OSError):
    """The host resolved to an address webhooks of this tenant may not reach."""


class PublicResolver(AbstractResolver):
    """getaddrinfo, refusing the whole answer when any address in it is not public."""

    def __init__(self) -> None:
        self._inner = ThreadedResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        for result in found:
            why = refusal(result["host"])
            if why:
                raise RefusedAddress(f"{host} resolves to {why}")
        return found

    async def close(self) -> None:
        await self._inner.close()


@dataclass(frozen=True, slots=True)
class Answer:
    code: int | None  # the HTTP status, None when there was none
    error: str  # empty when delivered

    @property
    def delivered(self) -> bool:
        return self.code is not None and 200 <= self.code < 300


class Poster:
    """Two client sessions: one whose resolver refuses private addresses, one for tenants
    that allow them. Start and close inside the event loop."""

    def __init__(self, timeout_s: float, connections: int) -> None:
        self.timeout_s = timeout_s
        self.connections = connections
        self._public: aiohttp.ClientSession | None = None
        self._any: aiohttp.ClientSession | None = None

    async def start(self) -> Poster:
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        self._public = aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(
            limit=self.connections, resolver=PublicResolver()), headers={"User-Agent": USER_AGENT})
        self._any = aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(
            limit=self.connections), headers={"User-Agent": USER_AGENT})
        return self

    async def close(self) -> None:
        for session in (self._public, self._any):
            if session is not None:
                await session.close()

    async def post(self, url: str, body: bytes, headers: dict[str, str], allow_private: bool) -> Answer:
        host = urlsplit(url).hostname or ""
        ip = literal(host)
        if not allow_private and ip is not None and (why := refusal(ip)):
            return Answer(None, f"refused: {why}")  # an IP literal never reaches the resolver
        session = self._any if allow_private else self._public
        assert session is not None, "Poster.start() first"
        try:
            async with session.post(url, data=body, headers=headers, allow_redirects=False) as resp:
                snippet = (await resp.content.read(SNIPPET)).decode("utf-8", "replace").strip()
                return _answer(resp, snippet)
        except TimeoutError:
            return Answer(None, f"timeout: no complete answer within {self.timeout_s:g} s")
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, RefusedAddress):
                return Answer(None, f"refused: {exc.os_error}")
            return Answer(None, f"connection failed: {exc.os_error.strerror or exc.os_error}")
        except aiohttp.ClientError as exc:
            return Answer(None, f"{type(exc).__name__}: {exc}"[:SNIPPET])


def _answer(resp: aiohttp.ClientResponse, snippet: str) -> Answer:
    if 200 <= resp.status < 300:
        return Answer(resp.status, "")
    if 300 <= resp.status < 400:
        where = resp.headers.get("Location", "")[:200]
        return Answer(resp.status, f"HTTP {resp.status}: redirects are not followed (Location: {where})")
    return Answer(resp.status, f"HTTP {resp.status}: {snippet}" if snippet else f"HTTP {resp.status}")
