"""``Inbound``: what a connector's ``parse`` makes of an envelope, for the normalizer."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes
    content_id: str | None = None
    inline: bool = False
    blob_key: str = ""  # already in the blob store (an SDK upload); ``data`` is then empty
    known_size: int = 0

    @property
    def size(self) -> int:
        return len(self.data) or self.known_size


@dataclass(slots=True)
class Sender:
    """Who sent it, as an identity the store can resolve to a customer."""

    kind: str  # email | phone | wechat | weibo | sdk | ...
    value: str  # normalized: lower-case address, E.164 number, openid ...
    name: str = ""
    scope: str = ""  # identities only unique within a scope (e.g. WeChat openid per account)


@dataclass(slots=True)
class Inbound:
    """One customer message, channel-neutral. Threading hints are channel-specific keys."""

    dedup_key: str
    sender: Sender
    subject: str = ""
    text: str = ""
    html: str = ""  # already sanitized
    attachments: list[Attachment] = field(default_factory=list)
    sent_at: int | None = None  # ms, as the sender's clock says
    # Threading: keys to look up (most specific first), the key this message registers as
    # the conversation's root, and the message's own key (replies may point at it).
    thread_refs: list[str] = field(default_factory=list)
    thread_root: str = ""
    own_key: str = ""
    ticket_number: int | None = None  # a ticket reference the sender quoted (subject, form)
    # Chat channels: the sender's session with this account; joins the ticket last active
    # within the session window, and always moves to the ticket the message lands on.
    session_key: str = ""
    auto_reason: str = ""  # non-empty: sent by a program; never answered, never opens or reopens a ticket
    # What kind of automatic message (email: ``autoreply.classify``): ``bulk`` opens a ticket
    # marked auto that is not routed (per mailbox), ``bounce`` and ``reply`` never open one.
    auto_kind: str = ""
    headers: dict[str, object] = field(default_factory=dict)
    # More identities of the same person (email, E.164 phone, unionid): they link channels.
    also: list[Sender] = field(default_factory=list)
    # Tags the ticket must carry for this message (a missed call: ``callback``).
    tags: list[str] = field(default_factory=list)
    # What a form or an app sent beyond the message, by its own field names (also kept in
    # ``headers``); an account's ``field_map`` says which custom ticket field each one fills.
    custom: dict[str, str] = field(default_factory=dict)
