"""The email scenario's sending side: plain SMTP transactions from asyncio connections.

The bench's senders run on the same cores as the system they measure, so they should cost
as little as a real remote MTA costs the machine: nothing. ``smtplib`` in a thread per
connection cost about 216 µs of this process's CPU per mail (dot-stuffing and line-ending
fixes by regular expression over every mail, the GIL handed between eight threads), about a
seventh of the whole run's CPU. Here each mail is stuffed once when the mix is built, and
each connection is one coroutine writing whole commands and reading whole replies: the
same SMTP conversation (EHLO, then MAIL, RCPT, DATA and the body per mail), at a fraction of
the cost. When the server offers PIPELINING, MAIL, RCPT and DATA go in one write and the
replies are read after it, as Postfix and Exim send to such a server; otherwise each
command waits for its reply, as smtplib does.
"""

from __future__ import annotations

import asyncio


class SmtpReplyError(RuntimeError):
    pass


def wire_data(raw: bytes) -> bytes:
    """A CRLF mail as sent after DATA: leading dots doubled, CRLF at the end, then ``.``."""
    body = (b"." if raw.startswith(b".") else b"") + raw.replace(b"\r\n.", b"\r\n..")
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    return body + b".\r\n"


async def _reply(reader: asyncio.StreamReader, expect: int) -> list[bytes]:
    """The reply's lines, once its code is ``expect``."""
    lines = []
    while True:
        line = await reader.readline()
        if len(line) < 4:
            raise SmtpReplyError(f"connection closed or short reply {line!r}")
        lines.append(line)
        if line[3:4] != b"-":
            break
    if int(line[:3]) != expect:
        raise SmtpReplyError(f"expected {expect}, got {line.decode(errors='replace').strip()}")
    return lines


async def send(port: int, sender: str, recipient: str, bodies: list[bytes], host: str = "127.0.0.1") -> None:
    """Each of ``bodies`` (from ``wire_data``) as one mail transaction on one connection."""
    reader, writer = await asyncio.open_connection(host, port, limit=1 << 16)
    try:
        await _reply(reader, 220)
        writer.write(b"EHLO bench.example\r\n")
        pipelining = any(line[4:].strip().upper() == b"PIPELINING" for line in await _reply(reader, 250))
        envelope = f"MAIL FROM:<{sender}>\r\n".encode(), f"RCPT TO:<{recipient}>\r\n".encode()
        group = b"".join(envelope) + b"DATA\r\n"
        for body in bodies:
            if pipelining:  # MAIL, RCPT and DATA in one write, as Postfix sends them (RFC 2920)
                writer.write(group)
                await _reply(reader, 250)
                await _reply(reader, 250)
                await _reply(reader, 354)
                writer.write(body)
                await _reply(reader, 250)
                continue
            writer.write(envelope[0])
            await _reply(reader, 250)
            writer.write(envelope[1])
            await _reply(reader, 250)
            writer.write(b"DATA\r\n")
            await _reply(reader, 354)
            writer.write(body)
            await _reply(reader, 250)
        writer.write(b"QUIT\r\n")
        await _reply(reader, 221)
    finally:
        writer.close()
        await writer.wait_closed()
