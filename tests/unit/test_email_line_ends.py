"""The feedparser's end-of-line search from the end: the same matches as the stdlib pattern."""

import re
from email import feedparser
from email.parser import BytesParser
from email.policy import compat32

import pytest

import connectors.email.mime  # noqa: F401 (installs the quick search)
from connectors.email.line_ends import LineEndAtEnd

STOCK = re.compile(r"(\r\n|\r|\n)\Z")


@pytest.mark.parametrize("text", [
    "", "a", "\n", "\r", "\r\n", "\n\r", "\r\r", "\n\n", "ab\r\n", "ab\n", "ab\r", "ab\n\r",
    "a\r\nb", "line\r\n\r\n", "x" * 30_000 + "\r\n", "=" * 5 + "\n" * 3,
])
def test_same_match_as_the_stdlib_pattern(text):
    quick = LineEndAtEnd(STOCK).search(text)
    stock = STOCK.search(text)
    assert (quick.group(0), quick.span()) == (stock.group(0), stock.span()) if stock else quick is None


def test_the_parser_uses_it_and_trims_the_line_end_a_boundary_owns():
    assert isinstance(feedparser.NLCRE_eol, LineEndAtEnd)
    raw = (b"From: a@example.cn\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
           b"--b\r\nContent-Type: text/plain\r\n\r\nfirst\r\n\r\n--b\r\n"
           b"Content-Type: application/octet-stream\r\n\r\n" + b"A" * 20_000 + b"\r\n--b--\r\n")
    first, second = BytesParser(policy=compat32).parsebytes(raw).get_payload()
    # RFC 2046 §5.1.1: the CRLF before a boundary is the boundary's; the part's own stays.
    assert first.get_payload() == "first\r\n"
    assert second.get_payload() == "A" * 20_000
