"""Two quick paths for the stdlib mail parser (``email.feedparser``), same results.

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

Both are installed once, only over the exact forms this Python's parser uses; anything
else goes to ``re`` as before.
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


def install() -> None:
    current = feedparser.NLCRE_eol
    if isinstance(current, re.Pattern) and current.pattern == _EOL_AT_END:
        feedparser.NLCRE_eol = LineEndAtEnd(current)
    if feedparser.re is re:
        feedparser.re = _FeedparserRe()
