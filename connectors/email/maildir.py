"""Without a relay, replies go to a Maildir under the data folder, for people to read."""

from __future__ import annotations

import mailbox
import os
import secrets
from hashlib import sha256
from pathlib import Path


def key_for(handle: str) -> str:
    """The file name of a reply: its Message-ID hashed, so a retry finds the first copy and
    the name tells nothing (no time, host or process id as Maildir names usually hold)."""
    return "sb-" + sha256(handle.encode("utf-8", "surrogateescape")).hexdigest()[:40]


def store(folder: Path, handle: str, data: bytes) -> str:
    """Put ``data`` into ``folder``/new once per handle; returns its Maildir key (blocking)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    box = mailbox.Maildir(folder, create=True)  # new/, cur/, tmp/ made 0700
    key = key_for(handle)
    if key in box:  # a retry after a crash or a lost answer: already delivered
        return key
    tmp = folder / "tmp" / f"{key}.{secrets.token_hex(8)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            # link, not rename: of two concurrent deliveries of one handle, one wins, the
            # other sees it exists (the Maildir protocol's tmp -> new step).
            os.link(tmp, folder / "new" / key)
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)
    return key
