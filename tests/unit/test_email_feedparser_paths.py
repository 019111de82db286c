"""The feedparser's end-of-line search from the end: the same matches as the stdlib pattern."""

import re
from email import feedparser
from email.parser import BytesParser
from email.policy import compat32

import pytest

import connectors.email.mime  # noqa: F401 (installs the quick search)
from connectors.email.feedparser_paths import Boundary, LineEndAtEnd

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


@pytest.mark.parametrize("separator", ["--b", "--===============4398517367419370213==", "--a.b+c(d)?*[e]$^|\\f",
                                       "--Apple-Mail=_1D2E", "--\u7edf\u4e00"])
@pytest.mark.parametrize("tail", ["", "--", "\r\n", "\n", "\r", "--\r\n", "  \t\r\n", "-- \n", "x\r\n", "-\r\n",
                                  "--\r\nmore", " x"])
def test_boundary_matches_as_the_stdlib_pattern(separator, tail):
    stock = re.compile("(?P<sep>" + re.escape(separator) + r")(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$")
    quick = feedparser.re.compile(stock.pattern)
    assert isinstance(quick, Boundary)
    for line in (separator + tail, "x" + separator + tail, separator[:-1] + tail):
        want, got = stock.match(line), quick.match(line)
        assert (got is None) == (want is None)
        if want:
            assert [got.group(g) for g in ("end", "ws", "linesep")] == [want.group(g) for g in ("end", "ws", "linesep")]
            assert got.end() == want.end()


def test_other_patterns_compile_as_ever():
    pattern = feedparser.re.compile(r"(?P<sep>a)b")
    assert isinstance(pattern, re.Pattern) and pattern.match("ab")
    assert feedparser.re.escape("a.b") == re.escape("a.b")
