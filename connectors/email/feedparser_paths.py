"""Four quick paths for the stdlib mail parser (``email.feedparser``), same results.

* End of line. The parser trims the line end a MIME boundary owns (RFC 2046 §5.1.1: the
  CRLF before a boundary belongs to it) with ``NLCRE_eol.search(payload)``, the pattern
  ``(\\r\\n|\\r|\\n)\\Z``, which ``search`` tries at every offset of the part: 27 KB of
  base64 took about 400 µs, half of what reading a mail with one attachment cost
  (cProfile over the bench's mail mix). A match can only start at one of the last two
  characters, so the pattern searched from there finds the same match at once.
* Boundaries. For each multipart the parser compiles a regular expression of its boundary,
  ``--boundary`` then ``(--)?[ \\t]*(\\r\\n|\\r|\\n)?$``; boundaries are unique, so every
  multipart mail paid a compile (about 100 µs) and pushed another pattern out of ``re``'s
  cache. The same test is a ``startswith`` of the literal and one precompiled tail.
* Lines. The parser takes a part's lines one at a time from its ``BufferedSubFile``:
  ``__next__`` calls ``readline``, which calls each open multipart's boundary test. With
  every test a ``Boundary`` above, ``LineFeed`` does the same tests inline, one Python
  call per line instead of three: a 20 KB attachment is 360 lines, and the bench's mail
  mix (``ops.bench.email.mail_mix(2000)``) went from 344 to 327 µs of CPU per mail in
  ``mime.parse`` (``time.process_time``, best of 5 runs alternating with the code before).
  With any other test on the stack (the parser's blank-line test inside a delivery
  report), the stdlib's own ``readline`` runs.
* Bodies. A leaf part's body is the one place where the parser only joins the lines it
  reads, to the next boundary line; yet it still took them one by one (the buffer handed
  out 107 lines a mail over that mix, most of them a body's). ``LineFeed`` keeps the pushed text whole and cuts lines only as they are
  read; ``BodyFeedParser`` tells it when the parser is about to read a leaf body, and the
  buffer then hands over all of it up to the next line an open boundary starts (one
  ``str.find`` per boundary) as one string. ``parse_bytes`` feeds the mail at once rather
  than in 8 KB pieces. With these and ``message``'s parameter look-ups, ``mime.parse``
  over the mix went from 318 to 274 µs of CPU per mail (each 100-mail slice's best of 10
  runs, processes alternating with the code before; other pairs 321 to 275, 324 to 281),
  14 % less, and from 1.84 to 1.41 million instructions, 23 % (valgrind); reading the mail
  alone (``read_message``) from 1.06 to 0.69 million instructions.

All are installed once, only over the exact forms this Python's parser uses (the buffer
and ``BodyFeedParser`` only over the one source of ``email/feedparser.py`` they were
written against); anything else goes to ``re`` and the stdlib code as before.
"""

from __future__ import annotations

import hashlib
import inspect
import re
from email import feedparser
from email.message import Message
from email.policy import Policy

_EOL_AT_END = r"(\r\n|\r|\n)\Z"
_SEP_OPEN = "(?P<sep>"
_SEP_TAIL = r")(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$"
_TAIL = re.compile(_SEP_TAIL[1:])
# email/feedparser.py of Python 3.11 (3.11.7), whose parser's use of its buffer
# BodyFeedParser and LineFeed follow.
_KNOWN_SOURCE = "ca333e0462c96505d8c510f260192256306fa889c011c6f2eaa8d50c70503cce"
_installed: dict[str, bool] = {}
_ESCAPED = re.compile(r"\\(.)", re.S)
_LINE_END = re.compile(r"\r\n?|\n")
# _TAIL at the end of a line, read in the text the line is in: past the optional "--" and
# blanks, the line ends (the "$" of _TAIL after an optional line end is the line's end).
_TAIL_IN_TEXT = re.compile(r"(?:--)?[ \t]*(?:[\r\n]|\Z)")


class LineEndAtEnd:
    """``NLCRE_eol`` for the feedparser: ``search`` from two characters before the end."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern

    def search(self, string: str) -> re.Match[str] | None:
        return self.pattern.search(string, max(len(string) - 2, 0))


class Boundary:
    """A boundary line test: the separator as a literal, then the shared tail pattern.

    Its matches carry the groups the parser reads (``end``, ``ws``, ``linesep``).
    """

    def __init__(self, separator: str) -> None:
        self.separator = separator

    def match(self, line: str) -> re.Match[str] | None:
        return _TAIL.match(line, len(self.separator)) if line.startswith(self.separator) else None


class _FeedparserRe:
    """What ``email.feedparser`` sees as ``re``: ``re`` itself, but boundary patterns
    compile to a ``Boundary``."""

    def __getattr__(self, name: str):
        return getattr(re, name)

    @staticmethod
    def compile(pattern, flags=0):
        if not flags and isinstance(pattern, str) and pattern.startswith(_SEP_OPEN) and pattern.endswith(_SEP_TAIL):
            escaped = pattern[len(_SEP_OPEN):-len(_SEP_TAIL)]
            separator = _ESCAPED.sub(r"\1", escaped)
            if re.escape(separator) == escaped:  # exactly what the parser built: a literal
                return Boundary(separator)
        return re.compile(pattern, flags)


class LineFeed(feedparser.BufferedSubFile):
    """The parser's line buffer: the pushed text kept whole, cut into lines as they are read.

    ``_separators`` holds the open boundaries' separators, innermost first (the order
    ``readline`` tests them in, RFC 2046 §5.1.2), or None while any end test on the stack
    is not a ``Boundary`` (the parser's only ways to change the stack are the push and pop
    below). Lines are cut where ``StringIO(newline="").readlines()`` cuts them, as the
    stdlib buffer does (after CRLF, CR or LF); the text after the last LF waits for more,
    as there.

    After ``leaf_body()`` (which ``BodyFeedParser`` calls where the parser's next loop
    only joins what it reads: a leaf part's body), ``__next__`` hands out every line up
    to the next boundary line as one string, found with ``str.find``.
    """

    def __init__(self) -> None:
        super().__init__()
        self._separators: tuple[str, ...] | None = ()
        self._text = ""  # whole lines not read yet, from _at; the put-back _lines come first
        self._at = 0
        self._pending: list[str] = []  # pushed after the last LF: a line not ended yet
        self._leaf = False

    def push_eof_matcher(self, pred) -> None:
        super().push_eof_matcher(pred)
        self._separators = _separators(self._eofstack)

    def pop_eof_matcher(self):
        pred = super().pop_eof_matcher()
        self._separators = _separators(self._eofstack)
        return pred

    def leaf_body(self) -> None:
        self._leaf = True

    def push(self, data: str) -> None:
        if "\n" not in data:
            self._pending.append(data)
            return
        if self._pending:
            self._pending.append(data)
            data = "".join(self._pending)
            self._pending = []
        end = data.rfind("\n") + 1
        if end < len(data):
            self._pending.append(data[end:])
            data = data[:end]
        self._append(data)

    def pushlines(self, lines) -> None:
        self._spill()
        self._lines.extend(lines)

    def close(self) -> None:
        self._append("".join(self._pending))
        self._pending = []
        self._closed = True

    def _append(self, text: str) -> None:
        self._text = self._text[self._at:] + text if self._at < len(self._text) else text
        self._at = 0

    def _spill(self) -> None:
        """The unread text as lines, so lines pushed after it stay after it."""
        while self._at < len(self._text):
            self._lines.append(self._cut())

    def _cut(self) -> str:
        text, at = self._text, self._at
        found = _LINE_END.search(text, at)
        self._at = end = found.end() if found else len(text)
        return text[at:end]

    def readline(self):
        if self._lines:
            line = self._lines.popleft()
            put_back = self._lines.appendleft
        elif self._at < len(self._text):
            line = self._cut()
            put_back = self._uncut
        else:
            return "" if self._closed else feedparser.NeedMoreData
        separators = self._separators
        if separators is None:
            for ateof in reversed(self._eofstack):
                if ateof(line):
                    put_back(line)  # a false end of file: the line stays
                    return ""
            return line
        for separator in separators:
            if line.startswith(separator) and _TAIL.match(line, len(separator)):
                put_back(line)
                return ""
        return line

    def _uncut(self, line: str) -> None:
        self._at -= len(line)

    def __next__(self):
        separators = self._separators
        if self._lines or separators is None or self._at >= len(self._text):
            line = self.readline()
            if line == "":  # also the "" the parser puts back at the end (after a close boundary)
                self._leaf = False
                raise StopIteration
            return line
        text, at = self._text, self._at
        if self._leaf:
            end = _body_end(text, at, separators)
            if end > at:
                self._at = end
                return text[at:end]
            self._leaf = False
            raise StopIteration
        # readline's cut and test, inline: the header lines come this way.
        found = _LINE_END.search(text, at)
        end = found.end() if found else len(text)
        line = text[at:end]
        for separator in separators:
            if line.startswith(separator) and _TAIL.match(line, len(separator)):
                raise StopIteration  # a false end of file: the line stays
        self._at = end
        return line


def _body_end(text: str, at: int, separators: tuple[str, ...]) -> int:
    """Where the first line from ``at`` that a separator starts (a ``Boundary`` match) begins.

    A line cut at ``at`` starts there; any other starts after CR or LF. A separator holding
    a line end (a folded boundary parameter) starts no line.
    """
    end = len(text)
    for separator in separators:
        if "\r" in separator or "\n" in separator:
            continue
        found = text.find(separator, at, end)
        while found >= 0:
            if found == at or text[found - 1] in "\r\n":
                if _TAIL_IN_TEXT.match(text, found + len(separator)):
                    end = found
                    break
                found = text.find(separator, found + 1, end)
            else:  # inside a line: go on from the next line
                eol = _LINE_END.search(text, found)
                found = text.find(separator, eol.end(), end) if eol else -1
    return end


def _separators(stack: list) -> tuple[str, ...] | None:
    found = []
    for pred in reversed(stack):
        if getattr(pred, "__func__", None) is not Boundary.match or type(pred.__self__) is not Boundary:
            return None
        found.append(pred.__self__.separator)
    return tuple(found)


class BodyFeedParser(feedparser.FeedParser):
    """The stdlib parser, telling a ``LineFeed`` where the lines it reads are only joined."""

    def _parse_headers(self, lines) -> None:
        super()._parse_headers(lines)
        # Next, by the part's type, the parser reads a delivery report's blocks, an enclosed
        # message or a multipart's parts line by line; any other part's lines to the end of
        # the part, joined into its payload.
        if (not self._headersonly and isinstance(self._input, LineFeed)
                and self._cur.get_content_maintype() not in ("message", "multipart")):
            self._input.leaf_body()


def parse_bytes(raw: bytes, policy: Policy) -> Message:
    """What ``BytesParser(policy=policy).parsebytes(raw)`` returns; the bytes fed at once,
    not in 8 KB pieces."""
    parser = (BodyFeedParser if _installed.get("leaf") else feedparser.FeedParser)(policy=policy)
    parser.feed(raw.decode("ascii", "surrogateescape"))
    return parser.close()


def install() -> None:
    current = feedparser.NLCRE_eol
    if isinstance(current, re.Pattern) and current.pattern == _EOL_AT_END:
        feedparser.NLCRE_eol = LineEndAtEnd(current)
    if feedparser.re is re:
        feedparser.re = _FeedparserRe()
    # The buffer stands in for the stdlib's and BodyFeedParser knows where the parser only
    # joins lines: both were written against this one source of the module.
    if feedparser.BufferedSubFile.__module__ == "email.feedparser" and _source_digest() == _KNOWN_SOURCE:
        feedparser.BufferedSubFile = LineFeed
        _installed["leaf"] = True


def _source_digest() -> str:
    try:
        return hashlib.sha256(inspect.getsource(feedparser).encode()).hexdigest()
    except (OSError, TypeError):
        return ""
