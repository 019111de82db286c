"""``Channel``: everything the stages need to know of one channel, as one record.

Each package under ``connectors/`` exports one ``CHANNEL = Channel(...)`` and the registry
lists them; the gateway, normalizer, CLI and role runner read the registry, the router and
the store get what they need of it (the capacity classes) handed in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from core.envelope import Envelope

# The capacity an agent has per kind of conversation: a mail, a chat, a call at a time.
CAPACITY_CLASSES = ("email", "chat", "voice")
# A ticket of a channel no longer registered still needs a class to free its capacity.
FALLBACK_CLASS = "chat"

# ``Inbound`` lives in ``connectors.inbound``; core names it only by shape.
Parse = Callable[[Envelope], list[Any]]
SetupRoutes = Callable[[web.Application], None]


@dataclass(frozen=True, slots=True)
class Merge:
    """A later event of a stored message: its new headers, text and subject, tags its ticket needs."""

    headers: dict
    text: str
    subject: str
    tags: tuple[str, ...] = ()


# (stored message's headers, the new Inbound) -> what changes, or None: a plain duplicate.
OnDuplicate = Callable[[dict, Any], Merge | None]


def same_address(address: str) -> str:
    return address


def no_token_places(inbound: Any) -> list[str]:
    return []


@dataclass(frozen=True, slots=True)
class Channel:
    """One channel: its name (``ingest.<name>``), capacity class, ``parse`` and hooks.

    ``routes`` mounts its push routes on the gateway (None: it has its own server or poller).
    ``on_duplicate`` (None: a repeated dedup key is a duplicate, nothing changes) merges a
    later event into the stored message. ``account_address`` is an account address's normal
    form; ``account_secrets`` says whether an account's sealed secrets are settings its
    requests are verified with (email's hold an IMAP password instead). ``reply_token_places``
    is where a customer's reply may carry our signed reply token.
    """

    name: str
    capacity_class: str
    parse: Parse
    routes: SetupRoutes | None = None
    on_duplicate: OnDuplicate | None = None
    account_address: Callable[[str], str] = same_address
    account_secrets: bool = True
    reply_token_places: Callable[[Any], list[str]] = no_token_places
    # Replies out (``send``) join as one more field with a default, so no channel has to change.

    def __post_init__(self) -> None:
        if self.capacity_class not in CAPACITY_CLASSES:
            raise ValueError(f"channel {self.name!r}: capacity class must be one of {CAPACITY_CLASSES}")


def class_of(classes: Mapping[str, str], channel: str) -> str:
    """The capacity class of ``channel`` in the injected ``{name: class}`` map."""
    return classes.get(channel, FALLBACK_CLASS)
