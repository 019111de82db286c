"""Where a mail reply carries our signed reply token (the store verifies what is found)."""

from __future__ import annotations

from connectors.inbound import Inbound

_BODY_SCAN = 64 * 1024  # the marker sits in the quoted reply, near the top or the bottom


def token_places(inbound: Inbound) -> list[str]:
    """In-Reply-To/References, the To/Cc address (a plus-address), the body marker."""
    places = [*inbound.thread_refs]
    for name in ("to", "cc", "rcpt_to"):
        value = inbound.headers.get(name) or []
        places += value if isinstance(value, list) else [str(value)]
    text = inbound.text
    places += [text[:_BODY_SCAN], text[-_BODY_SCAN:]] if len(text) > _BODY_SCAN else [text]
    return places
