"""Identifiers and clocks used on the wire."""

import time

from ulid import ULID


def new_id() -> str:
    """A new ULID as its 26-character Crockford base32 text (sortable by creation time)."""
    return str(ULID())


def now_ms() -> int:
    return time.time_ns() // 1_000_000
