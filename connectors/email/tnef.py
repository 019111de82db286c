"""TNEF (``winmail.dat``, [MS-OXTNEF]): Outlook's wrapper around a message's attachments.

Exchange sends it to recipients it believes run Outlook; everyone else sees one opaque
``winmail.dat``. We unpack the files inside it (tnefparse) and keep its plain body.
"""

from __future__ import annotations

import logging

from tnefparse import TNEF

from connectors.email.charsets import decode_bytes
from connectors.inbound import Attachment

_TYPES = frozenset({"application/ms-tnef", "application/vnd.ms-tnef"})
MAX_TNEF_FILES = 200
# tnefparse reports odd properties through logging at warning level; they are not our errors.
logging.getLogger("tnefparse").setLevel(logging.ERROR)


def is_tnef(att: Attachment) -> bool:
    return att.content_type in _TYPES or att.filename.lower() == "winmail.dat"


def _unpack(att: Attachment) -> tuple[list[Attachment], str]:
    try:
        tnef = TNEF(att.data, do_checksum=False)
    except Exception:  # a hostile or truncated blob may fail anywhere in the parser
        return [att], ""
    files = []
    for n, inner in enumerate(tnef.attachments[:MAX_TNEF_FILES], 1):
        try:
            name = inner.long_filename() or inner.name
        except (UnicodeDecodeError, AttributeError):
            name = ""
        data = inner.data if isinstance(inner.data, bytes) else b""
        if not isinstance(name, str) or not name.strip():
            name = f"winmail-{n}.bin"
        files.append(Attachment(filename=name.strip().replace("/", "_").replace("\\", "_"),
                                content_type="application/octet-stream", data=data))
    body = tnef.body
    text = decode_bytes(body, tnef.codepage) if isinstance(body, bytes) else (body or "")
    if not files and not text.strip():
        return [att], ""  # nothing we can read inside: keep the blob for a human
    return files, text.replace("\r\n", "\n").replace("\x00", "").strip()


def expand(attachments: list[Attachment]) -> tuple[list[Attachment], str]:
    """Attachments with every TNEF blob replaced by the files inside; plus TNEF body text."""
    out: list[Attachment] = []
    texts: list[str] = []
    for att in attachments:
        if not is_tnef(att):
            out.append(att)
            continue
        files, text = _unpack(att)
        out += files
        if text:
            texts.append(text)
    return out, "\n\n".join(texts)
