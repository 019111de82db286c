"""The email bench's SMTP sender: dot-stuffing as RFC 5321 4.5.2 asks, replies checked."""

import asyncio

import pytest

from ops.bench import smtp_client


def test_wire_data_doubles_leading_dots_and_ends_the_data():
    raw = b"Subject: x\r\n\r\n.hidden\r\nmid.dot\r\n..two\r\n."
    assert smtp_client.wire_data(raw) == b"Subject: x\r\n\r\n..hidden\r\nmid.dot\r\n...two\r\n..\r\n.\r\n"
    assert smtp_client.wire_data(b"a\r\n") == b"a\r\n.\r\n"


async def _server(replies: dict[bytes, bytes], seen: list[bytes]) -> asyncio.AbstractServer:
    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 test\r\n")
        while line := await reader.readline():
            seen.append(line)
            verb = line.split(b":")[0].split(b" ")[0].strip()
            if verb == b"DATA":
                writer.write(b"354 go\r\n")
                while (body := await reader.readline()) != b".\r\n":
                    seen.append(body)
                writer.write(replies.get(b".", b"250 ok\r\n"))
            else:
                writer.write(replies.get(verb, b"250-first\r\n250 ok\r\n" if verb == b"EHLO" else b"250 ok\r\n"))
            if verb == b"QUIT":
                break
        writer.close()
    return await asyncio.start_server(session, "127.0.0.1", 0)


async def test_each_mail_is_one_transaction_and_a_multiline_ehlo_reply_is_read_whole():
    seen: list[bytes] = []
    server = await _server({b"QUIT": b"221 bye\r\n"}, seen)
    port = server.sockets[0].getsockname()[1]
    async with server:
        await smtp_client.send(port, "c@example.cn", "s@example.com", [smtp_client.wire_data(b"A\r\n.b\r\n")] * 2)
    assert seen == [b"EHLO bench.example\r\n",
                    *[b"MAIL FROM:<c@example.cn>\r\n", b"RCPT TO:<s@example.com>\r\n", b"DATA\r\n",
                      b"A\r\n", b"..b\r\n"] * 2,
                    b"QUIT\r\n"]


async def test_a_refused_mail_raises_with_the_servers_words():
    server = await _server({b"RCPT": b"550 5.1.1 no such mailbox\r\n"}, [])
    port = server.sockets[0].getsockname()[1]
    async with server:
        with pytest.raises(smtp_client.SmtpReplyError, match="expected 250, got 550 5.1.1 no such mailbox"):
            await smtp_client.send(port, "c@example.cn", "nobody@example.com", [b"x\r\n.\r\n"])
