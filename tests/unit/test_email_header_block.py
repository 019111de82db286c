"""Where a mail's header block ends (the first blank line, CRLF CRLF or a bare LF LF), and
the quick check that a block needs no repair."""

import os
import random
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.email.headers import first_blank_line, repair, repair_by_lines

DIFFERENTIAL = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "1000")), deadline=None,
                        derandomize=not os.environ.get("FUZZ_EXAMPLES"),
                        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


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


# What a header block's lines can be: fields (obsolete white space before the colon), folded
# continuations, a parameter list going on, junk, an mbox separator, blank and odd line ends.
LINES = [b"From: a@b.cn", b"Subject : x", b"X-Y:", b"Content-Type: multipart/mixed;", b"boundary=b", b" folded",
         b"\tfolded;", b"---- Original email message ----", b"From a@b.cn Mon Jan  1", b"no colon here", b"", b":",
         b"a b: c", "名字: x".encode(), b"\x80: x", b"Received: from x", b"=?utf-8?b?5L2g?=", b"  ", b"\x0b: x"]
ENDS = [b"\r\n", b"\n", b"\r", b"\r\r\n", b""]
_line = st.one_of(st.sampled_from([line for line in LINES if line[:1] in b" \t" or b":" in line]), st.sampled_from(LINES))


@DIFFERENTIAL
@given(st.lists(st.tuples(_line, st.sampled_from(ENDS)), max_size=8),
       st.sampled_from([b"\r\n\r\nbody\r\n", b"\n\nbody", b"", b"\r\n"]))
def test_an_intact_block_is_kept_as_every_line_tested_would_keep_it(lines, rest):
    raw = b"".join(line + end for line, end in lines) + rest
    assert repair(raw) == repair_by_lines(raw)


def test_a_long_broken_block_is_matched_in_linear_time():
    raw = b"A: b\r\n" * 3000 + b"junk\r\n" + b"X: y\r\n\r\nbody"
    started = time.process_time()
    for _ in range(20):
        repair(raw)
    assert time.process_time() - started < 1.0
