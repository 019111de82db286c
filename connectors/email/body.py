"""The body of a mail: every text part lands in the text and the HTML, in order, or is a file.

A multipart/alternative offers one content twice (RFC 2046 §5.1.4): its plain version goes
to the text, its richest (last) HTML version to the HTML. Any other multipart is shown part
after part (RFC 2046 §5.1.3) — Apple Mail and Rails mailers send plain and HTML siblings
in a multipart/mixed, each holding a different piece of the message. Only the root of a
multipart/related is a body (RFC 2387 §3.2); its other parts are resources, kept as files.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import Message
from email.policy import Policy
from html import escape, unescape

import nh3

from connectors.email import parts
from connectors.email.charsets import decode_bytes
from connectors.inbound import Attachment

MAX_DEPTH = 50  # multipart levels walked; deeper parts are ignored
MAX_PARTS = 1000  # parts walked; later parts are ignored
_META_CHARSET = re.compile(rb"<meta[^>]{0,200}?charset\s*=\s*[\"']?\s*([\w.:-]{1,40})", re.I)
_BLOCK_TAGS = {"p", "div", "br", "li", "tr", "hr", "pre", "table", "ul", "ol", "blockquote",
               "h1", "h2", "h3", "h4", "h5", "h6"}
_CELL_TAGS = {"td", "th"}
_BLOCK_TAG = re.compile(rf"</?(?:{'|'.join(_BLOCK_TAGS)})>")  # nh3 output: no attributes
_CELL_TAG = re.compile(r"</?t[dh]>")
_SPACES = re.compile(r"[ \t\r\n\f]+")
_BLANK_LINES = re.compile(r"\n{3,}")
_DROP_CONTENT = {"script", "style", "title"}
_URL_SCHEMES = nh3.ALLOWED_URL_SCHEMES | {"cid"}  # RFC 2392: <img src="cid:..."> inline parts
# Built once: nh3.clean builds its sanitizer from the options on every call, which cost
# more than cleaning a short mail's HTML.
_SHOWN = nh3.Cleaner(clean_content_tags=_DROP_CONTENT, url_schemes=_URL_SCHEMES)
_READABLE = nh3.Cleaner(tags=_BLOCK_TAGS | _CELL_TAGS, clean_content_tags=_DROP_CONTENT, attributes={},
                        link_rel=None)


class _Unit:
    """One piece of the body: its text, and its HTML when it has one of its own.

    An HTML part's text is made from its HTML when first read: the HTML option of a
    multipart/alternative that has a plain one is never read as text, and making it (an nh3
    pass and four regular expressions) was a quarter of ``body`` for such a mail (190 µs
    of CPU to 141 to 151 in two alternating runs, the machine loaded).
    """

    __slots__ = ("_text", "html")

    def __init__(self, text: str | None, html: str | None = None) -> None:
        self._text = text
        self.html = html

    @classmethod
    def of_html(cls, html: str) -> _Unit:
        return cls(None, html)

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = html_to_text(self.html or "")
        return self._text


@dataclass
class _Walk:
    hints: Sequence[str]
    policy: Policy
    seen: int = 0
    attachments: list[Attachment] = field(default_factory=list)

    def file(self, part: Message) -> None:
        n = len(self.attachments) + 1
        self.attachments.append(parts.attachment(part, n, self.hints, self.policy))


def body(msg: Message, hints: Sequence[str], policy: Policy) -> tuple[str, str, list[Attachment]]:
    """Text, sanitized HTML and the files of a message."""
    walk = _Walk(hints, policy)
    units = _units(msg, 0, walk)
    text = "\n\n".join(u.text.strip() for u in units if u.text.strip())
    html = ""
    if any(u.html is not None for u in units):
        html = "\n".join(u.html if u.html is not None else text_to_html(u.text) for u in units)
    return text, _SHOWN.clean(html).strip() if html else "", walk.attachments


def _units(part: Message, depth: int, walk: _Walk) -> list[_Unit]:
    walk.seen += 1
    if walk.seen > MAX_PARTS:
        return []
    if part.get_content_maintype() == "multipart" and part.is_multipart():
        if depth >= MAX_DEPTH:
            return []
        children = [c for c in part.get_payload() if isinstance(c, Message)]
        subtype = part.get_content_subtype()
        if subtype == "alternative":
            return _alternative([_units(c, depth + 1, walk) for c in children])
        if subtype == "related" and children:
            units = _units(children[0], depth + 1, walk)
            for resource in children[1:]:
                _files(resource, depth + 1, walk)
            return units
        return [u for c in children for u in _units(c, depth + 1, walk)]
    kind = body_kind(part)
    if not kind:
        walk.file(part)
        return []
    content = part_text(part, kind == "html", walk.hints)
    return [_Unit.of_html(content)] if kind == "html" else [_Unit(content)]


def _files(part: Message, depth: int, walk: _Walk) -> None:
    """A related resource: every leaf below it is a file, text or not."""
    walk.seen += 1
    if walk.seen > MAX_PARTS:
        return
    if part.get_content_maintype() == "multipart" and part.is_multipart():
        if depth < MAX_DEPTH:
            for child in part.get_payload():
                if isinstance(child, Message):
                    _files(child, depth + 1, walk)
        return
    walk.file(part)


def _alternative(options: list[list[_Unit]]) -> list[_Unit]:
    """One unit: the plain option's text, the last option's HTML (RFC 2046 §5.1.4)."""
    options = [o for o in options if any(u.html or u.text.strip() for u in o)]  # HTML first: its text is lazy
    if not options:
        return []
    plain = next((o for o in options if all(u.html is None for u in o)), options[-1])
    rich = next((o for o in reversed(options) if any(u.html is not None for u in o)), None)
    text = "\n\n".join(u.text.strip() for u in plain if u.text.strip())
    if rich is None:
        return [_Unit(text)]
    html = "\n".join(u.html if u.html is not None else text_to_html(u.text) for u in rich)
    return [_Unit(text, html)]


def body_kind(part: Message) -> str:
    """"plain" or "html" for a body part, "" for an attachment."""
    if (part.get_content_disposition() == "attachment"
            or part.get_param("filename", None, "content-disposition") is not None
            or part.get_param("name", None, "content-type") is not None):
        return ""
    ctype = part.get_content_type()
    if ctype == "text/html":
        return "html"
    # A multipart without a usable boundary cannot be split: show it as text.
    return "plain" if ctype == "text/plain" or ctype.startswith("multipart/") else ""


def part_text(part: Message, html: bool, hints: Sequence[str]) -> str:
    data = parts.payload(part)
    charset = part.get_content_charset()
    if charset is None and html:
        found = _META_CHARSET.search(data[:4096])
        charset = found.group(1).decode("ascii") if found else None
    text = decode_bytes(data, charset, hints)
    # NUL is legal in 8-bit MIME but not in a PostgreSQL text column.
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")


def text_to_html(text: str) -> str:
    """A plain part shown inside an HTML body: escaped, its line breaks kept."""
    return "<div>" + escape(text.strip()).replace("\n", "<br>\n") + "</div>" if text.strip() else ""


def html_to_text(html: str) -> str:
    """Readable text from HTML: block tags become line breaks, table cells spaces."""
    bare = _READABLE.clean(html)
    flat = _CELL_TAG.sub(" ", _SPACES.sub(" ", bare))
    text = unescape(_BLOCK_TAG.sub("\n", flat)).replace("\xa0", " ")
    lines = "\n".join(" ".join(line.split()) for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", lines).strip()
