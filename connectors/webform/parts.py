"""Count a form body's parts and bytes as they arrive, before any MIME parse runs.

The stdlib MIME parser takes about a millisecond per part, so a 2 MB body of 20,000 empty
file parts costs seconds of CPU before a file limit could be checked on its result.
``Intake`` sees the bytes chunk by chunk and refuses at the first part (or byte) over the
form's limits; what reaches the parser is then bounded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import policy
from email.parser import BytesHeaderParser

MAX_FIELDS = 200  # text fields of one submission
MAX_FILES = 100  # files of one submission, whatever a form's ``max_files`` says
MAX_PART_HEADER = 8 * 1024  # one part's header block: a long UTF-8 filename fits many times
MAX_PARAMS = 16  # ';' in one part's header block: name, filename, filename*, charset...
MAX_CONTENT_TYPE = 1024
# A blank line ends a part's header block; the stdlib parser splits lines at CRLF, CR or LF.
_BLANK_LINE = re.compile(rb"(?:\r\n|\n|\r(?!\n))(?:\r\n|\n|\r)")
_CLOSE = re.compile(rb"--[ \t]*")
_NESTED = (b"multipart/", b"message/")  # parts the stdlib parser would parse again, recursively


class BadForm(ValueError):
    pass


class TooMuch(BadForm):
    """Over one of the form's limits: answered 413 with ``reason`` as the error code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Limits:
    max_files: int = MAX_FILES
    max_fields: int = MAX_FIELDS
    max_bytes: int = 64 * 1024 * 1024


def boundary(content_type: str) -> bytes:
    """The multipart boundary, read from the header exactly as the body parser will read it."""
    if len(content_type) > MAX_CONTENT_TYPE:
        raise BadForm(f"Content-Type header is over {MAX_CONTENT_TYPE} characters")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    value = BytesHeaderParser(policy=policy.HTTP).parsebytes(head).get_boundary()
    # RFC 2046 §5.1.1: 1 to 70 characters.
    if not value or len(value) > 70 or not value.isascii():
        raise BadForm("multipart Content-Type without a valid boundary")
    return value.encode()


class Intake:
    """Bytes of one form body, fed as they arrive; ``feed`` raises at the first excess.

    Counts every line that starts with ``--boundary`` (a superset of the delimiters the
    parser will see) and reads each part's header block to tell files from fields.
    """

    def __init__(self, content_type: str, limits: Limits) -> None:
        self.limits = limits
        mime = content_type.split(";", 1)[0].strip().lower()
        self.delimiter = b"--" + boundary(content_type) if mime == "multipart/form-data" else None
        self.buf = bytearray()
        self.pos = 0  # where the next delimiter search starts
        self.files = self.fields = 0
        self.closed = False  # the close delimiter was seen: what follows is the epilogue

    def feed(self, chunk: bytes) -> None:
        self.buf += chunk
        if len(self.buf) > self.limits.max_bytes:
            raise TooMuch("too_large", f"body exceeds {self.limits.max_bytes} bytes")
        if self.delimiter is not None:
            self._scan()

    @property
    def body(self) -> bytes:
        return bytes(self.buf)

    def _scan(self) -> None:
        buf, delimiter = self.buf, self.delimiter
        while not self.closed:
            at = buf.find(delimiter, self.pos)
            if at < 0:
                # A delimiter may straddle two chunks: search its possible start again.
                self.pos = max(self.pos, len(buf) - len(delimiter))
                return
            if at > 0 and buf[at - 1] not in b"\r\n":
                self.pos = at + 1
                continue
            after = at + len(delimiter)
            step = self._close(after) if buf[after:after + 2] == b"--" else self._part(after)
            if step is None:
                self.pos = at  # the rest of this delimiter or header block has not arrived yet
                return
            self.pos = step

    def _close(self, after: int) -> int | None:
        """``--boundary--`` ends the parts only on a line of its own (the parser's rule)."""
        end = _CLOSE.match(self.buf, after).end()
        if end == len(self.buf):
            return None
        if self.buf[end] in b"\r\n":
            self.closed = True
            return end
        return after  # "--boundary--x" is no delimiter to the parser: plain content

    def _part(self, after: int) -> int | None:
        end = _BLANK_LINE.search(self.buf, after, after + MAX_PART_HEADER)
        if end is None:
            if len(self.buf) - after >= MAX_PART_HEADER:
                raise TooMuch("header_too_large", f"a part's headers are over {MAX_PART_HEADER} bytes")
            return None
        header = bytes(self.buf[after:end.start()])
        if self.delimiter in header:
            # The parser would end the part at that line: more parts than one header block shows.
            raise BadForm("a part's headers contain the boundary")
        self._count(header.lower())
        return end.end()

    def _count(self, header: bytes) -> None:
        if header.count(b";") > MAX_PARAMS:
            raise TooMuch("header_too_large", f"a part's headers carry over {MAX_PARAMS} parameters")
        if any(kind in header for kind in _NESTED):
            raise BadForm("a part is itself multipart or a message (RFC 7578 §4.3: one file per part)")
        if b"filename" in header:
            self.files += 1
            if self.files > self.limits.max_files:
                raise TooMuch("too_many_files", f"more than {self.limits.max_files} files")
        else:
            self.fields += 1
            if self.fields > self.limits.max_fields:
                raise TooMuch("too_many_fields", f"more than {self.limits.max_fields} fields")


def check(content_type: str, body: bytes, limits: Limits) -> None:
    """The same count over a whole body (what a worker re-reads from the stream)."""
    Intake(content_type, limits).feed(body)
