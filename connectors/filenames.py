"""A file name a customer sent, made safe to store and show: a name, never a path."""

from __future__ import annotations

import re
import unicodedata

MAX_CHARS = 200  # attachments.filename is 255; room for what a download adds
_SEPARATORS = re.compile(r"[/\\]+")


def safe_filename(raw: str, default: str = "upload") -> str:
    """The last path segment, without control/format characters, ``..`` or leading dots.

    Unicode letters stay (``报价单.pdf`` is kept as it is); NFC so one name has one spelling.
    """
    name = unicodedata.normalize("NFC", raw)
    # Cc: C0/C1 controls and NUL; Cf: bidi overrides that make "exe.pdf" read as "fdp.exe".
    name = "".join(c for c in name if unicodedata.category(c) not in ("Cc", "Cf", "Cs", "Co", "Cn"))
    name = _SEPARATORS.split(name)[-1].strip()
    name = name.lstrip(".").strip()  # "..", ".." + "/x", and hidden-file names
    if len(name) > MAX_CHARS:
        stem, dot, ext = name.rpartition(".")
        keep = ext if dot and len(ext) <= 16 else ""
        name = (stem if keep else name)[:MAX_CHARS - len(keep) - 1].rstrip() + (f".{keep}" if keep else "")
    return name or default
