"""Where a mail's header block ends: the first blank line, CRLF CRLF or a bare LF LF."""

import random

import pytest

from connectors.email.headers import first_blank_line


def _everywhere(raw: bytes) -> int:
    ends = [i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0]
    return min(ends) if ends else -1


@pytest.mark.parametrize(("raw", "end"), [
    (b"A: 1\r\n\r\nbody\n\nmore", 4), (b"A: 1\n\nbody\r\n\r\n", 4), (b"A: 1\r\nB: 2\n\nbody", 10),
    (b"A: 1\r\n\n\r\n\r\n", 5), (b"A: 1\r\n\r\n", 4), (b"no blank line\r\n", -1), (b"", -1), (b"\n\n", 0),
])
def test_first_blank_line(raw, end):
    assert first_blank_line(raw) == end


def test_same_offset_as_searching_the_whole_mail_for_both():
    rng = random.Random(5322)
    for _ in range(20_000):
        raw = bytes(rng.choice(b"\r\nA:") for _ in range(rng.randint(0, 14)))
        assert first_blank_line(raw) == _everywhere(raw), raw
