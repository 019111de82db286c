"""Three quick paths for the stdlib mail parser (``email.feedparser``), same results.

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

All are installed once, only over the exact forms this Python's parser uses; anything
else goes to ``re`` and the stdlib code as before.
"""

from __future__ import annotations

import re
from email import feedparser

_EOL_AT_END = r"(\r\n|\r|\n)\Z"
_SEP_OPEN = "(?P<sep>"
_SEP_TAIL = r")(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$"
_TAIL = re.compile(_SEP_TAIL[1:])
_ESCAPED = re.compile(r"\\(.)", re.S)


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
    """The parser's line buffer, reading past lines no open boundary starts.

    ``_separators`` holds the open boundaries' separators, innermost first (the order
    ``readline`` tests them in, RFC 2046 §5.1.2), or None while any end test on the stack
    is not a ``Boundary`` (the parser's only ways to change the stack are the push and pop
    below).
    """

    def __init__(self) -> None:
        super().__init__()
        self._separators: tuple[str, ...] | None = ()

    def push_eof_matcher(self, pred) -> None:
        super().push_eof_matcher(pred)
        self._separators = _separators(self._eofstack)

    def pop_eof_matcher(self):
        pred = super().pop_eof_matcher()
        self._separators = _separators(self._eofstack)
        return pred

    def readline(self):
        separators = self._separators
        if separators is None or not self._lines:
            return super().readline()
        line = self._lines.popleft()
        for separator in separators:
            if line.startswith(separator) and _TAIL.match(line, len(separator)):
                self._lines.appendleft(line)  # a false end of file: the line stays
                return ""
        return line

    def __next__(self):
        separators = self._separators
        if separators is None or not self._lines:
            return super().__next__()
        line = self._lines.popleft()
        for separator in separators:
            if line.startswith(separator) and _TAIL.match(line, len(separator)):
                self._lines.appendleft(line)
                raise StopIteration
        if not line:  # the parser puts back the "" it read at the end (after a close boundary)
            raise StopIteration
        return line


def _separators(stack: list) -> tuple[str, ...] | None:
    found = []
    for pred in reversed(stack):
        if getattr(pred, "__func__", None) is not Boundary.match or type(pred.__self__) is not Boundary:
            return None
        found.append(pred.__self__.separator)
    return tuple(found)


def install() -> None:
    current = feedparser.NLCRE_eol
    if isinstance(current, re.Pattern) and current.pattern == _EOL_AT_END:
        feedparser.NLCRE_eol = LineEndAtEnd(current)
    if feedparser.re is re:
        feedparser.re = _FeedparserRe()
    stock = feedparser.BufferedSubFile
    if stock.__module__ == "email.feedparser" and {"_lines", "_eofstack", "_closed"} <= vars(stock()).keys():
        feedparser.BufferedSubFile = LineFeed
