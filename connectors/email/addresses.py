"""Address fields (From, To, Cc, Reply-To) as ``email.utils.getaddresses`` reads them, the
plain forms without it.

The stdlib reads an address list one character at a time in Python: ``Name
<addr@example.cn>`` cost about 15 µs, and a mail's From, To, Cc and Reply-To were 12 % of
``mime.parse`` under cProfile over the bench's mail mix (``ops.bench.email.mail_mix(2000)``).
Nearly every mail writes its addresses in one of a few plain forms, each a regular
expression away from the answer:

    addr@dom   <addr@dom>   Name Words <addr@dom>   "Quoted Name" <addr@dom>
    =?utf-8?b?5L2g5aW9?= <addr@dom>   and comma lists of these

A list is read here only when every comma-separated element is one of these forms with no
comment, quote inside a name, backslash, route, group, domain literal or empty element;
anything else, the whole list goes to the stdlib. Within the forms the answer is the
stdlib's by construction: names are its phrase atoms (anything but RFC 5322 specials and
folding white space, dots allowed) joined by one space, a quoted name is kept verbatim,
and an address is dot-atoms around one ``@``. Pythons whose ``getaddresses`` checks its
result (``strict``) give the same answer for these forms.

With To and Cc names no longer decoded (only their addresses are kept), ``mime.parse``
went from 363 to 337 µs of CPU per mail over that mix (``time.process_time``, best of 5
runs alternating with the code before).
"""

from __future__ import annotations

import re
from email.utils import getaddresses

_FWS = "[ \\t\\r\\n]"  # what the stdlib skips between tokens (not other Unicode spaces)
_ATOM = '[^()<>@,:;."\\[\\]\\\\ \\t\\r\\n]+'  # no specials, no backslash, no white space
_WORD = '[^()<>@,:;"\\[\\]\\\\ \\t\\r\\n]+'  # a phrase atom may hold dots (RFC 5322 obs-phrase)
_ADDR = f"{_ATOM}(?:\\.{_ATOM})*@{_ATOM}(?:\\.{_ATOM})*"
_ELEMENT = re.compile(
    f"{_FWS}*(?:(?P<bare>{_ADDR})"
    f'|(?:(?P<words>{_WORD}(?:{_FWS}+{_WORD})*)|"(?P<quoted>[^"\\\\\\r\\n,()]*)")?{_FWS}*<(?P<angle>{_ADDR})>)'
    f"{_FWS}*"
)
_FWS_RUN = re.compile(f"{_FWS}+")


def parse(values: list[str]) -> list[tuple[str, str]]:
    """(display name, address) pairs, exactly as ``email.utils.getaddresses(values)``."""
    return quick(values) or getaddresses(values)


def quick(values: list[str]) -> list[tuple[str, str]] | None:
    """The pairs when every element is a plain form; None when the stdlib must read it."""
    if not values or not all(type(v) is str for v in values):
        return None
    pairs = []
    for element in ", ".join(values).split(","):  # how getaddresses joins its fields
        found = _ELEMENT.fullmatch(element)
        if found is None:
            return None
        bare, words, quoted, angle = found.group("bare", "words", "quoted", "angle")
        if bare is not None:
            pairs.append(("", bare))
        elif words is not None:
            pairs.append((_FWS_RUN.sub(" ", words), angle))  # words: no white space at either end
        else:
            pairs.append((quoted or "", angle))
    return pairs
