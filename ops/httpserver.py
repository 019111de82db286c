"""The HTTP listener of `api`, `gateway` and `run`: aiohttp behind per-connection limits.

aiohttp bounds a connection only by its keep-alive timer; this adds a deadline for a new
connection's request head (slowloris) and caps on open connections per address and in total.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from aiohttp import web

from core.connections import PER_IP, ConnectionLimits
from core.settings import Settings

log = structlog.get_logger()
SERVER = "Switchboard"
JSON_TYPES = frozenset({"application/json", "application/problem+json"})
# (status line, error code, message) for each way a connection is turned away.
REFUSALS = {
    PER_IP: ("429 Too Many Requests", "too_many_connections", "too many open connections from your address"),
    "total": ("503 Service Unavailable", "server_busy", "too many open connections, try again later"),
    "header_timeout": ("408 Request Timeout", "request_timeout", "request headers not received in time"),
}


async def secure_headers(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """``on_response_prepare``: no sniffing, no version in ``Server``, JSON never cached.

    API answers carry personal data; a response that sets its own ``Cache-Control``
    (attachment downloads) keeps it.
    """
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Server"] = SERVER
    if response.content_type in JSON_TYPES or request.path.startswith("/api/"):
        response.headers.setdefault("Cache-Control", "no-store")


def refusal(reason: str) -> bytes:
    """A whole HTTP/1.1 answer that closes the connection, JSON body as every other error."""
    status, code, message = REFUSALS[reason]
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    head = (f"HTTP/1.1 {status}\r\nServer: {SERVER}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n")
    return head.encode("ascii") + body


class GuardedConnection(asyncio.Protocol):
    """One accepted connection: turned away over a cap, closed when its first request head is
    late, else handed to aiohttp's own protocol (which then bounds it by its keep-alive timer)."""

    def __init__(self, make_handler: Callable[[], asyncio.Protocol], limits: ConnectionLimits,
                 header_timeout: float) -> None:
        self.make_handler, self.limits, self.header_timeout = make_handler, limits, header_timeout
        self.inner: asyncio.Protocol | None = None
        self.transport: asyncio.Transport | None = None
        self.address = ""
        self.deadline: asyncio.TimerHandle | None = None
        self.tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        self.address = str(peer[0]) if isinstance(peer, tuple) else ""
        over = self.limits.admit(self.address)
        if over:
            log.info("http.refused", reason=f"too_many_connections_{over}", remote_addr=self.address)
            transport.write(refusal(over))
            transport.close()
            return
        self.transport = transport
        self.deadline = asyncio.get_running_loop().call_later(self.header_timeout, self._late)
        self.inner = self.make_handler()
        self.inner.connection_made(transport)

    def _late(self) -> None:
        log.info("http.refused", reason="header_timeout", remote_addr=self.address)
        self.transport.write(refusal("header_timeout"))
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self.inner is None:
            return
        if self.deadline is not None:
            seen = self.tail + data
            if b"\r\n\r\n" in seen or b"\n\n" in seen:  # the head is complete (RFC 9112 §2.1)
                self.deadline.cancel()
                self.deadline = None
            self.tail = seen[-3:]
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner else None

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.inner is None:
            return
        if self.deadline is not None:
            self.deadline.cancel()
        self.limits.release(self.address)
        self.inner.connection_lost(exc)


@dataclass
class HttpListener:
    runner: web.AppRunner
    server: asyncio.Server
    limits: ConnectionLimits

    async def close(self) -> None:
        self.server.close()
        await self.runner.cleanup()  # closes the open connections
        await self.server.wait_closed()


async def listen(app: web.Application, s: Settings, port: int) -> HttpListener:
    """Serve ``app`` on ``s.host``:``port`` with the settings' timeouts and connection caps."""
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=s.http_idle_timeout_s)
    await runner.setup()
    limits = ConnectionLimits(s.http_max_connections_per_ip, s.max_connections)
    server = await asyncio.get_running_loop().create_server(
        lambda: GuardedConnection(runner.server, limits, s.http_header_timeout_s), s.host, port)
    return HttpListener(runner, server, limits)
