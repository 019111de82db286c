"""One IMAP connection (aioimaplib) with a deadline on every network step.

A server that stops answering fails the step with ``ImapFailure`` after ``timeout``
seconds instead of hanging the poller; the caller reconnects.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from dataclasses import dataclass

import aioimaplib

_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]", re.I)
_UIDNEXT = re.compile(rb"\[UIDNEXT (\d+)\]", re.I)
_FETCH_UID = re.compile(rb"\(.*?\bUID (\d+)", re.I)
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)", re.I)
_SERVER_GONE = (aioimaplib.AioImapException, OSError, TimeoutError, EOFError)


class ImapFailure(Exception):
    """The connection or the server failed: reconnect (with backoff) and carry on."""


class FetchFailure(Exception):
    """The server would not hand over this one message: count it against the UID."""


@dataclass(frozen=True, slots=True)
class Folder:
    uidvalidity: int
    uidnext: int | None


class ImapSession:
    """Connect, log in, select one folder; then search, fetch, flag, move and IDLE in it."""

    def __init__(self, host: str, port: int, *, security: str, tls: ssl.SSLContext | None,
                 timeout: float) -> None:
        """``security``: ssl (TLS from the start, RFC 8314), starttls (RFC 3501 §6.2.1) or none."""
        if security != "none" and tls is None:
            raise ValueError(f"security={security} needs a TLS context")
        self.host, self.port, self.security, self.tls, self.timeout = host, port, security, tls, timeout
        self.client: aioimaplib.IMAP4 | None = None
        self.lost = asyncio.Event()

    async def _step(self, what: str, coro):
        try:
            async with asyncio.timeout(self.timeout):
                return await coro
        except TimeoutError:
            raise ImapFailure(f"{what}: no answer within {self.timeout:g}s") from None
        except _SERVER_GONE as exc:
            raise ImapFailure(f"{what}: {type(exc).__name__}: {exc}") from exc

    def _ok(self, what: str, response) -> list:
        if response.result != "OK":
            raise ImapFailure(f"{what}: {response.result} {_first(response.lines)}")
        return response.lines

    async def open(self, user: str, password: str, folder: str) -> Folder:
        self.client = aioimaplib.IMAP4(host=self.host, port=self.port, timeout=self.timeout,
                                       conn_lost_cb=self._connection_lost,
                                       ssl_context=self.tls if self.security == "ssl" else None)
        await self._step("connect", self.client.wait_hello_from_server())
        if self.security == "starttls":
            await self._starttls()
        if self.client.has_capability("LOGINDISABLED"):  # RFC 3501 §6.2.3: LOGIN must not be sent
            raise ImapFailure(f"login: the server takes no password without TLS (LOGINDISABLED) and "
                              f"security={self.security}; use starttls or ssl")
        self._ok("login", await self._step("login", self.client.login(user, password)))
        lines = self._ok("select", await self._step("select", self.client.select(_quote(folder))))
        blob = b"\n".join(line for line in lines if isinstance(line, bytes | bytearray))
        validity = _UIDVALIDITY.search(blob)
        if validity is None:
            raise ImapFailure("select: server sent no UIDVALIDITY")  # RFC 3501 §6.3.1 requires it
        uidnext = _UIDNEXT.search(blob)
        return Folder(int(validity.group(1)), int(uidnext.group(1)) if uidnext else None)

    async def _starttls(self) -> None:
        """Upgrade before LOGIN; a server without STARTTLS gets no password in plain text."""
        protocol = self._protocol()
        if "STARTTLS" not in protocol.capabilities:
            raise ImapFailure("starttls: the server does not offer STARTTLS; not logging in without TLS "
                              "(security=none would send the password in plain text)")
        command = aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)
        self._ok("starttls", await self._step("starttls", protocol.execute(command)))
        loop = asyncio.get_running_loop()
        protocol.transport = await self._step("tls handshake", loop.start_tls(
            protocol.transport, protocol, self.tls, server_hostname=self.host))
        # RFC 3501 §6.2.1: capabilities announced before TLS are forgotten and asked for again.
        await self._step("capability", protocol.capability())

    def _connection_lost(self, exc: Exception | None) -> None:
        self.lost.set()
        if self.client is not None:  # wake an IDLE waiting for a push that will never come
            self.client.protocol.idle_queue.put_nowait([b"connection lost"])

    @property
    def tls_version(self) -> str | None:
        """The TLS version of the connection (``TLSv1.3``), None in plain text."""
        transport = self.client.protocol.transport if self.client is not None else None
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        return ssl_object.version() if ssl_object is not None else None

    @property
    def supports_idle(self) -> bool:
        return self.client is not None and self.client.has_capability("IDLE")

    async def uids_after(self, last_uid: int) -> list[int]:
        """UIDs above ``last_uid``, ascending (``n:*`` also matches the highest UID, RFC 3501 §6.4.8)."""
        protocol = self._protocol()
        response = await self._step("search", protocol.search("UID", f"{last_uid + 1}:*", charset=None, by_uid=True))
        found: list[int] = []
        for line in self._ok("search", response):
            # aioimaplib hands over "* SEARCH 4 5" as b"4 5" (b"SEARCH 4 5" in older releases).
            words = line.split() if isinstance(line, bytes) else []
            if words and words[0].upper() == b"SEARCH":
                words = words[1:]
            if words and all(w.isdigit() for w in words):
                found += [int(w) for w in words]
        return sorted(u for u in set(found) if u > last_uid)

    async def sizes(self, uids: list[int]) -> dict[int, int]:
        """RFC822.SIZE of each UID that still exists."""
        protocol = self._protocol()
        response = await self._step("fetch sizes", protocol.fetch(
            ",".join(map(str, uids)), "(UID RFC822.SIZE)", by_uid=True, timeout=self.timeout))
        out = {}
        for line in self._ok("fetch sizes", response):
            if isinstance(line, bytes):
                uid, size = _FETCH_UID.search(line), _SIZE.search(line)
                if uid and size:
                    out[int(uid.group(1))] = int(size.group(1))
        return out

    async def fetch(self, uid: int) -> bytes:
        """The raw message, without setting \\Seen (BODY.PEEK, RFC 3501 §6.4.5)."""
        protocol = self._protocol()
        response = await self._step(f"fetch {uid}", protocol.fetch(
            str(uid), "(UID BODY.PEEK[])", by_uid=True, timeout=self.timeout))
        if response.result != "OK":
            raise FetchFailure(f"server answered {response.result} {_first(response.lines)}")
        lines = response.lines
        for i, line in enumerate(lines[:-1]):
            match = isinstance(line, bytes) and _FETCH_UID.search(line)
            if match and int(match.group(1)) == uid and isinstance(lines[i + 1], bytearray):
                return bytes(lines[i + 1])
        raise FetchFailure("no message body in the FETCH response")

    async def mark_seen(self, uid: int) -> None:
        self._ok("store", await self._step("store", self._protocol().store(
            str(uid), "+FLAGS.SILENT", r"(\Seen)", by_uid=True)))

    async def move(self, uid: int, folder: str) -> None:
        protocol = self._protocol()
        if "MOVE" in protocol.capabilities:  # RFC 6851
            self._ok("move", await self._step("move", protocol.move(str(uid), _quote(folder), by_uid=True)))
            return
        self._ok("copy", await self._step("copy", protocol.copy(str(uid), _quote(folder), by_uid=True)))
        await self.mark_seen(uid)
        self._ok("store", await self._step("store", protocol.store(
            str(uid), "+FLAGS.SILENT", r"(\Deleted)", by_uid=True)))
        if "UIDPLUS" in protocol.capabilities:  # RFC 4315: expunge only this UID
            self._ok("expunge", await self._step("expunge", protocol.expunge(str(uid), by_uid=True)))

    async def idle(self, seconds: float) -> bool:
        """Hold an IDLE until the server reports a change or ``seconds`` pass; True on a change."""
        client = self.client
        assert client is not None
        while not client.protocol.idle_queue.empty():  # stale pushes from before this IDLE
            client.protocol.idle_queue.get_nowait()
        idle = await self._step("idle", client.idle_start(timeout=seconds))
        try:
            pushed = await client.wait_server_push(timeout=seconds + self.timeout)
        except TimeoutError:
            pushed = []
        if self.lost.is_set():
            raise ImapFailure("connection lost during IDLE")
        if client.has_pending_idle():
            client.idle_done()
        self._ok("idle", await self._step("idle done", idle))
        return pushed != aioimaplib.STOP_WAIT_SERVER_PUSH and bool(pushed)

    async def noop(self) -> None:
        self._ok("noop", await self._step("noop", self._client().noop()))

    async def close(self) -> None:
        """Log out politely if the server still answers; drop the connection either way."""
        client, self.client = self.client, None
        if client is None:
            return
        try:
            if not self.lost.is_set() and client.get_state() != "LOGOUT":
                async with asyncio.timeout(min(self.timeout, 2.0)):
                    await client.logout()
        except (*_SERVER_GONE, aioimaplib.Abort):
            pass
        finally:
            transport = client.protocol.transport
            if transport is not None:
                transport.close()
            for task in list(client.tasks) + list(client.protocol.tasks):
                task.cancel()
            if not client._client_task.done():
                client._client_task.cancel()

    def _client(self) -> aioimaplib.IMAP4:
        if self.client is None or self.lost.is_set():
            raise ImapFailure("not connected")
        return self.client

    def _protocol(self) -> aioimaplib.IMAP4ClientProtocol:
        return self._client().protocol


def _quote(name: str) -> str:
    """A mailbox name as an IMAP quoted string (RFC 3501 §4.3)."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _first(lines: list) -> str:
    for line in lines:
        if isinstance(line, bytes):
            return line.decode(errors="replace")[:200]
    return ""
