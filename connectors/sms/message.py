"""One text (or MMS) a customer sent, as every provider reports it, and what agents read of it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from connectors.contact import FieldError, e164
from core import keys

CHANNEL = "sms"
STREAM = keys.ingest_stream(CHANNEL)
MAX_TEXT = 10_000  # a concatenated SMS is at most a few hundred characters; Twilio caps Body at 1,600


@dataclass(slots=True)
class Sms:
    """What a provider told us of one message; ``sender`` exactly as sent."""

    id: str  # Twilio MessageSid, Aliyun sequence_id: the dedup key within the account
    provider: str  # twilio | aliyun
    sender: str
    text: str
    to: str = ""  # the business's number (Twilio To), or Aliyun's extension code (dest_code)
    sent_at: int | None = None  # epoch ms, when the provider reports it
    media: list[dict[str, str]] = field(default_factory=list)  # MMS: {"url", "content_type"}, not fetched
    extra: dict[str, str] = field(default_factory=dict)  # provider details worth keeping (sign_name …)

    def to_doc(self) -> dict:
        return asdict(self)


def number(raw: str, region: str) -> str:
    """The sender's number in E.164, or "" for a short code, an alphanumeric sender ID or a
    channel address (Twilio's ``whatsapp:+…``, which is not an SMS)."""
    if not raw or ":" in raw or not any(c.isdigit() for c in raw):
        return ""
    try:
        return e164(raw, region, "from")
    except FieldError:
        return ""


def session_key(sender: str) -> str:
    """Thread key of a sender: joins the ticket this number last wrote about, within the window."""
    return f"sms:{sender}"


def dedup_key(account: str, sms: Sms) -> str:
    return f"sms:{account}:{sms.provider}:{sms.id}"


def describe(sms: Sms) -> str:
    """The message as text an agent can read: the body, then one line per media link."""
    lines = [sms.text] if sms.text else []
    lines += [f"[media {m['content_type'] or 'unknown type'}] {m['url']}" for m in sms.media]
    return "\n".join(lines)


def subject(sms: Sms) -> str:
    first = sms.text.strip().splitlines()[0][:80] if sms.text.strip() else ""
    if first:
        return first
    return f"[MMS] {len(sms.media)} media" if sms.media else "[SMS]"
