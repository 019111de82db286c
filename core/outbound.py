"""What a channel's sender is given and what it answers: the outbound port of every channel."""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class OutboundFile:
    filename: str
    content_type: str
    data: bytes

@dataclass(frozen=True, slots=True)
class Outgoing:
    """One reply to send, as the outbox holds it."""
    outbox_id: int
    tenant_id: int
    tenant: str                     # slug
    ticket_id: int
    ticket_number: int
    message_id: int                 # the stored outgoing message
    channel: str                    # the channel to send on
    account_id: int
    account_address: str            # e.g. support@example.com, the WeChat/Weibo account, the app key
    account_settings: Mapping[str, Any]   # the account's settings WITH secrets opened (token, appid, app_secret, secret, push_url, api_base, …)
    to: str                         # the customer's identity value on that channel: email address, openid, weibo uid, sdk user id, E.164 phone
    to_name: str
    subject: str
    text: str
    html: str                       # sanitized already ("" when none)
    attachments: tuple[OutboundFile, ...] = ()
    in_reply_to: str = ""           # email: the customer's last Message-ID
    references: tuple[str, ...] = ()
    handle: str = ""                # platform idempotency handle chosen ONCE when the outbox row is written and reused on every retry (email: the Message-ID incl. our signed reply token)
    reply_to: str = ""              # email: our signed plus-address for the customer's answer
    attempt: int = 1

@dataclass(frozen=True, slots=True)
class Sent:
    platform_id: str = ""           # e.g. SMTP queue id, WeChat msgid
    status: str = "sent"            # "sent" | "delivered"

class TemporaryFailure(Exception):
    """Try again later (network, 4xx SMTP, WeChat -1/45009 rate limit…)."""
    def __init__(self, code: str, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.retry_after_s = code, message, retry_after_s

class PermanentFailure(Exception):
    """Will never succeed as is (5xx SMTP, WeChat 45015 48-hour window, unknown user…): `failed`."""
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message

class SendContext(Protocol):
    """What a sender may use: shared Redis (e.g. WeChat access tokens shared by replicas), an aiohttp
    ClientSession, settings (core.settings.Settings), the data folder."""
    redis: Any
    http: Any
    settings: Any

Send = Callable[[Outgoing, SendContext], Awaitable[Sent]]
