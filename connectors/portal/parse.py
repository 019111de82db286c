"""``parse``: one status-page envelope -> one ``Inbound`` on the ticket its link named."""

from __future__ import annotations

import binascii
import json

from connectors.inbound import Attachment, Inbound, Sender
from connectors.portal.message import PortalMessage
from core.envelope import Envelope
from core.errors import PermanentError


def parse(env: Envelope) -> list[Inbound]:
    try:
        msg = PortalMessage.from_bytes(env.payload)
    except (ValueError, KeyError, TypeError, binascii.Error, json.JSONDecodeError) as exc:
        raise PermanentError(f"not a status-page message: {exc}") from None
    kind, scope, value, name = msg.sender
    files = [Attachment(msg.filename, msg.content_type or "application/octet-stream", msg.data)] if msg.filename else []
    return [Inbound(
        dedup_key=msg.dedup_key(), sender=Sender(kind, value, name, scope), text=msg.text,
        attachments=files,
        headers={"portal": {"ticket_id": msg.ticket_id, "reply_token": msg.reply_token,
                            "remote_addr": env.meta.get("remote_addr", "")}},
    )]


def reply_token_places(inbound: Inbound) -> list[str]:
    """The signed reply token the page put in the message (checked by the threading rule)."""
    portal = inbound.headers.get("portal")
    token = portal.get("reply_token") if isinstance(portal, dict) else None
    return [token] if isinstance(token, str) else []
