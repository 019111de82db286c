"""The bulk DATA reader against RFC 5321's line rules, read line by line as aiosmtpd does.

Each stream is fed to a real ``asyncio.StreamReader`` in arbitrary chunks, with reader limits
small enough that the reader gives up looking for ".\\r\\n" mid-body: wherever the chunks and
the limit fall, the body, the refusal and what is left for the next command stay the same.
"""

from __future__ import annotations

import asyncio

from fuzzing import FUZZ
from hypothesis import given
from hypothesis import strategies as st

from connectors.email.smtp_data import TooMuchData, read_data

TOO_MUCH = "too much"


def by_lines(stream: bytes, limit: int) -> tuple[bytes | str, bytes]:
    """RFC 5321 §4.1.1.4 and §4.5.2 one line at a time: (body or TOO_MUCH, the bytes after)."""
    lines, pos = [], 0
    while True:
        end = stream.index(b"\r\n", pos) + 2  # lines end with CRLF only; a bare LF is data
        line, pos = stream[pos:end], end
        if line == b".\r\n":
            break
        lines.append(line)
    if limit and sum(map(len, lines)) > limit:
        return TOO_MUCH, stream[pos:]
    return b"".join(line[1:] if line.startswith(b".") else line for line in lines), stream[pos:]


async def _bulk(stream: bytes, cuts: list[int], limit: int, reader_limit: int) -> tuple[bytes | str, bytes]:
    reader = asyncio.StreamReader(limit=reader_limit)

    async def feed() -> None:
        last = 0
        for cut in [*sorted(set(cuts)), len(stream)]:
            reader.feed_data(stream[last:cut])
            last = cut
            await asyncio.sleep(0)  # the reader wakes with what has arrived so far
        reader.feed_eof()

    feeder = asyncio.create_task(feed())
    try:
        body: bytes | str = await read_data(reader, limit)
    except TooMuchData:
        body = TOO_MUCH
    await feeder
    return body, await reader.read()


def bulk(stream: bytes, cuts: list[int], limit: int = 0, reader_limit: int = 1 << 16) -> tuple[bytes | str, bytes]:
    return asyncio.run(_bulk(stream, cuts, limit, reader_limit))


# Bodies made of the octets that matter (dots, CR, LF) among others, 8-bit included.
_octets = st.lists(st.sampled_from([b".", b"\r", b"\n", b"\r\n", b"\r\n.", b"..", b"a", b"\xff", b"\xe4\xbd\xa0"]),
                   max_size=80).map(b"".join)


@FUZZ
@given(body=_octets, after=st.sampled_from([b"", b"RSET\r\n", b"QUIT\r\n"]), data=st.data(),
       limit=st.sampled_from([0, 5, 40, 200]), reader_limit=st.integers(4, 64))
def test_any_body_in_any_chunks_reads_as_line_by_line(body, after, data, limit, reader_limit):
    # Whatever the body, a CRLF "." CRLF follows it; the first one in the stream ends DATA.
    stream = body + b"\r\n.\r\n" + after
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=12))
    assert bulk(stream, cuts, limit, reader_limit) == by_lines(stream, limit)


def test_stuffed_dots_and_a_lone_dot_inside_are_unstuffed():
    stream = b"Subject: x\r\n\r\n..leading dot\r\n..\r\n...\r\nend.\r\n.\r\n"
    assert bulk(stream, []) == (b"Subject: x\r\n\r\n.leading dot\r\n.\r\n..\r\nend.\r\n", b"")


def test_end_of_data_split_across_every_two_reads():
    stream = b"Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n"
    for cut in range(len(stream)):
        assert bulk(stream, [cut]) == (b"Subject: x\r\n\r\nbody\r\n", b"QUIT\r\n"), cut


def test_an_empty_body_ends_at_the_first_line():
    assert bulk(b".\r\nQUIT\r\n", [1, 2]) == (b"", b"QUIT\r\n")


def test_a_dot_after_a_bare_lf_neither_ends_nor_is_unstuffed():
    stream = b"a\n.\r\nb\n..c\r\n.\r\n"
    assert bulk(stream, [2]) == (b"a\n.\r\nb\n..c\r\n", b"")


def test_over_the_limit_is_read_to_its_end_and_refused():
    body = b"x" * 70 + b"\r\n"
    stream = body * 10 + b".\r\nNOOP\r\n"
    assert bulk(stream, [100, 300], limit=len(body) * 10) == (body * 10, b"NOOP\r\n")
    assert bulk(stream, [100, 300], limit=len(body) * 10 - 1, reader_limit=64) == (TOO_MUCH, b"NOOP\r\n")
