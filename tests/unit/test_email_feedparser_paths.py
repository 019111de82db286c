"""The feedparser's quick paths: the same matches, lines and parts as the stdlib's own."""

import io
import os
import re
from email import feedparser
from email.parser import BytesParser
from email.policy import compat32

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import connectors.email.mime  # noqa: F401 (installs the quick search)
from connectors.email.feedparser_paths import (
    BodyFeedParser,
    Boundary,
    LineEndAtEnd,
    LineFeed,
    _body_end,
    parse_bytes,
)
from connectors.email.message import RawPolicy

FEEDS = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "500")), deadline=None,
                 derandomize=not os.environ.get("FUZZ_EXAMPLES"),
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

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


# The line buffer: whole mails parsed with the stdlib's buffer and with LineFeed, fed whole
# and in pieces, must come out part for part the same.
_EOL = st.sampled_from(["\r\n", "\n", "\r"])
_BOUNDARIES = ["b", "b1", "b-", "=_x", "a.b", "b b"]
_BODY_LINES = ["text", "", "-", "--", "--b", "--b--", "--b  ", "--b\t--", "--b1", "--b1--", "--bx", "---b", " --b",
               "--=_x", "--a.b--", "--b b", "QUJD" * 19, "Final-Recipient: rfc822; a@b.cn", "From: x",
               "x--b", "a --b--", "--b--b--b", "a\rb", "--b\r--b1", "From nobody", "--a", "\t--b"]


def _part(draw, depth: int) -> str:
    eol = draw(_EOL)
    kinds = ["leaf", "multipart", "multipart", "report", "rfc822"] if depth < 3 else ["leaf", "report"]
    kind = draw(st.sampled_from(kinds))
    if kind == "leaf":
        lines = draw(st.lists(st.sampled_from(_BODY_LINES), max_size=6))
        return f"Content-Type: text/plain{eol}{eol}" + "".join(line + draw(_EOL) for line in lines)
    if kind == "report":
        blocks = draw(st.lists(st.lists(st.sampled_from(["Action: failed", "Status: 5.1.1", "--b", "x"]), min_size=1,
                                        max_size=3), max_size=3))
        body = eol.join(eol.join(block) for block in blocks)
        return f"Content-Type: message/delivery-status{eol}{eol}{body}{eol}"
    if kind == "rfc822":
        return f"Content-Type: message/rfc822{eol}{eol}From: a@b.cn{eol}" + _part(draw, depth + 1)
    boundary = draw(st.sampled_from(_BOUNDARIES))
    if draw(st.integers(0, 9)) == 0:  # a boundary folded over two lines, or none at all
        declared = draw(st.sampled_from([f'"a{eol} b"', f"a{eol} b", "", '""']))
        return f"Content-Type: multipart/mixed; boundary={declared}{eol}{eol}--a{eol}--a b{eol}x{eol}--a--{eol}"
    parts = [_part(draw, depth + 1) for _ in range(draw(st.integers(0, 3)))]
    close = draw(st.sampled_from([f"--{boundary}--{eol}", f"--{boundary}-- {eol}", f"--{boundary}--", ""]))
    preamble = draw(st.sampled_from(["", f"preamble{eol}", f"--{boundary}x{eol}"]))
    return (f'Content-Type: multipart/mixed; boundary="{boundary}"{eol}{eol}{preamble}'
            + "".join(f"--{boundary}{draw(st.sampled_from(['', ' ', '  ']))}{eol}{part}" for part in parts)
            + close + draw(st.sampled_from(["", f"epilogue{eol}", f"--b{eol}--b--{eol}"])))


@st.composite
def nested_mails(draw) -> tuple[str, list[int]]:
    text = "From: a@b.cn\r\n" + _part(draw, 0)
    end = draw(st.sampled_from(["", "", "\r", "\r\n", "--b", "--b--", "tail"]))  # the last line unended
    return text + end, draw(st.lists(st.integers(1, 40), max_size=8))


def _shape(msg) -> tuple:
    payload = msg.get_payload()
    inner = [_shape(p) for p in payload] if isinstance(payload, list) else payload
    return (msg.items(), inner, [type(d) for d in msg.defects], msg.preamble, msg.epilogue)


def _feed(text: str, cuts: list[int], buffer, parser_class=feedparser.FeedParser) -> tuple:
    stock, feedparser.BufferedSubFile = feedparser.BufferedSubFile, buffer
    try:
        parser = parser_class(policy=compat32)
        at = 0
        for n in cuts:  # the SMTP server and BytesParser feed a mail in pieces
            parser.feed(text[at:at + n])
            at += n
        parser.feed(text[at:])
        return _shape(parser.close())
    finally:
        feedparser.BufferedSubFile = stock


@FEEDS
@given(nested_mails())
def test_line_feed_splits_parts_as_the_stdlib_buffer(mail):
    text, cuts = mail
    assert feedparser.BufferedSubFile is LineFeed
    assert _feed(text, cuts, LineFeed) == _feed(text, cuts, LineFeed.__mro__[1])


@FEEDS
@given(nested_mails())
def test_leaf_bodies_read_at_once_split_parts_as_the_stdlib_parser(mail):
    text, cuts = mail
    stock = _feed(text, [], LineFeed.__mro__[1])
    # Pieces cut anywhere put boundaries, CRLFs and line ends at the edge of what was pushed.
    assert _feed(text, cuts, LineFeed, BodyFeedParser) == stock
    assert _feed(text, [], LineFeed, BodyFeedParser) == stock
    assert _feed(text, [1] * min(len(text), 400), LineFeed, BodyFeedParser) == stock


@FEEDS
@given(nested_mails())
def test_parse_bytes_is_the_stdlib_bytes_parser(mail):
    raw = mail[0].encode("utf-8") + b"\xb1\xa8\r\n"  # 8-bit bytes come back surrogate-escaped
    policy = RawPolicy()
    stock, feedparser.BufferedSubFile = feedparser.BufferedSubFile, LineFeed.__mro__[1]
    try:
        want = _shape(BytesParser(policy=policy).parsebytes(raw))
    finally:
        feedparser.BufferedSubFile = stock
    assert _shape(parse_bytes(raw, policy)) == want


def _first_boundary_line(text: str, at: int, separators: tuple[str, ...]) -> int:
    """Line by line with the stdlib's pattern, as its buffer reads them."""
    lines = io.StringIO(text[at:], newline="").readlines()
    for line in lines:
        for separator in separators:
            pattern = "(?P<sep>" + re.escape(separator) + r")(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$"
            if re.match(pattern, line):
                return at
        at += len(line)
    return at


_PIECES = ["--b", "--b1", "--", "-", "b", "x", " ", "\t", "\r", "\n", "\r\n", "--a", "--a\r\n b", "--\rb"]


@FEEDS
@given(st.lists(st.sampled_from(_PIECES), max_size=30).map("".join),
       st.lists(st.sampled_from(["--b", "--b1", "--a", "--a\r\n b", "--\rb"]), min_size=1, max_size=3, unique=True))
def test_body_end_is_the_first_line_a_boundary_starts(text, separators):
    separators = tuple(separators)
    assert _body_end(text, 0, separators) == _first_boundary_line(text, 0, separators)


def test_a_leaf_body_is_one_string_up_to_the_boundary_line():
    feed = LineFeed()
    feed.push("QUJD\r\nREVG\r\n--bx\r\n x--b\r\n--b \r\nnext\r\n")
    feed.push_eof_matcher(Boundary("--b").match)
    feed.leaf_body()
    assert next(feed) == "QUJD\r\nREVG\r\n--bx\r\n x--b\r\n"
    with pytest.raises(StopIteration):
        next(feed)
    feed.pop_eof_matcher()
    # The boundary line stays for the multipart; lines are single again.
    assert [feed.readline(), feed.readline(), feed.readline()] == ["--b \r\n", "next\r\n", feedparser.NeedMoreData]


def test_a_line_not_ended_waits_for_the_rest_or_the_close():
    feed = LineFeed()
    feed.push("a\r")
    assert feed.readline() is feedparser.NeedMoreData
    feed.push("\nb\rc")
    assert [feed.readline(), feed.readline()] == ["a\r\n", feedparser.NeedMoreData]
    feed.close()
    assert [feed.readline(), feed.readline(), feed.readline()] == ["b\r", "c", ""]


def test_the_buffer_and_the_parser_are_installed_over_the_source_they_were_written_for():
    # Another Python's feedparser.py leaves the stdlib's buffer, parsing as ever (and this fails:
    # read the new source against LineFeed and BodyFeedParser before adding its digest).
    assert feedparser.BufferedSubFile is LineFeed
    raw = b"From: a@b.cn\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nhi\r\n--b--\r\n"
    assert parse_bytes(raw, RawPolicy()).get_payload()[0].get_payload() == "hi"
