"""Repair a header block that a careless gateway broke, before the stdlib parser reads it.

Two breakages seen from real senders: a folded line that lost its leading white space (an
anti-spam gateway re-wrapping a long base64 header), which would end the header block there;
and a line of junk before the first field ("---- Original email message ----"), which
would make the whole mail "no header fields". A line is only taken into the header block
when a well-known field follows it, so a body written without a blank line stays a body.
"""

from __future__ import annotations

import re

# RFC 5322 §3.6.8: field-name is printable US-ASCII except ":"; obsolete syntax (§4.5)
# allows white space before the colon.
_FIELD = re.compile(rb"^[!-9;-~]+[ \t]*:")
_KNOWN = re.compile(
    rb"^(?:from|to|cc|bcc|subject|date|message-id|in-reply-to|references|reply-to|sender|"
    rb"return-path|received|mime-version|content-[a-z-]+|x-[!-9;-~]+)[ \t]*:", re.I)
MAX_SCAN_LINES = 2000
# A block whose every line (as bytes.splitlines cuts them) is a field or a continuation: the
# loop below would keep it as it is. One match instead of two patterns per line took
# ``repair`` from 17 to 7 µs of CPU per mail over the bench's mail mix
# (``ops.bench.email.mail_mix(2000)``, ``time.process_time``, best of 5).
_INTACT = re.compile(rb"(?:(?:[!-9;-~]+[ \t]*:|[ \t])[^\r\n]*(?:\r\n|\r|\n))*(?:(?:[!-9;-~]+[ \t]*:|[ \t])[^\r\n]*)?")


def repair(raw: bytes) -> bytes:
    """``raw`` with stray header lines folded back in and a junk first line dropped."""
    return raw if _INTACT.fullmatch(raw, 0, _block_end(raw)) else repair_by_lines(raw)


def repair_by_lines(raw: bytes) -> bytes:
    """``repair``, every line of the block tested."""
    end = _block_end(raw)
    lines = raw[:end].splitlines(keepends=True)[:MAX_SCAN_LINES]
    if not lines:
        return raw
    # The index of the last well-known field: stray lines before it are header text.
    last_known = max((i for i, line in enumerate(lines) if _KNOWN.match(line)), default=-1)
    out: list[bytes] = []
    changed = False
    for i, line in enumerate(lines):
        # A parameter list ending in ";" goes on: "boundary=..." below it is part of it.
        params_go_on = bool(out) and out[-1].rstrip().endswith(b";")
        if (_FIELD.match(line) or line[:1] in (b" ", b"\t")
                or (i >= last_known and not params_go_on)):
            out.append(line)
        elif i == 0 and line.startswith(b"From "):
            out.append(line)  # the mbox separator: the stdlib sets it aside itself
        elif i == 0:
            changed = True  # junk before the first field: dropped
        else:
            out.append(b" " + line)  # a continuation that lost its fold (RFC 5322 §2.2.3)
            changed = True
    if not changed:
        return raw
    return b"".join(out) + raw[len(b"".join(lines)):]


def _block_end(raw: bytes) -> int:
    """Where the header block ends: the first empty line (RFC 5322 §2.1)."""
    end = first_blank_line(raw)
    return end + 1 if end >= 0 else len(raw)


def first_blank_line(raw: bytes) -> int:
    """Offset of the first CRLF CRLF or LF LF, -1 if none.

    A bare LF LF is only looked for before the first CRLF CRLF: searched for over a whole
    CRLF mail it cost 25 µs per 28 KB (a two-octet needle of one repeated octet).
    """
    crlf = raw.find(b"\r\n\r\n")
    lf = raw.find(b"\n\n", 0, crlf + 1 if crlf >= 0 else len(raw))
    return min(i for i in (crlf, lf) if i >= 0) if max(crlf, lf) >= 0 else -1
