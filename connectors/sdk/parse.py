"""``parse``: one SDK message (JSON, verified at the edge) -> ``Inbound``."""

from __future__ import annotations

import json

from connectors.contact import FieldError
from connectors.filenames import safe_filename
from connectors.inbound import Attachment, Inbound, Sender
from connectors.sdk.message import read
from core.envelope import Envelope
from core.errors import PermanentError

CHANNEL = "sdk"


def dedup_key(account: str, client_id: str) -> str:
    return f"sdk:{account}:{client_id}"


def conversation_key(conversation: str) -> str:
    """Thread key of an app conversation (thread keys are per account, so per app)."""
    return f"sdk:conv:{conversation}"


def parse(env: Envelope) -> list[Inbound]:
    try:
        msg = read(env.payload, env.meta.get("region", "CN"))
        uploads = json.loads(env.meta.get("uploads", "[]"))
    except (FieldError, ValueError) as exc:
        raise PermanentError(f"not an SDK message: {exc}") from None
    also = [Sender("email", msg.email, msg.name)] if msg.email else []
    also += [Sender("phone", msg.phone, msg.name)] if msg.phone else []
    key = conversation_key(msg.conversation)
    first_line = next((line.strip() for line in msg.text.splitlines() if line.strip()), "")
    return [Inbound(
        dedup_key=dedup_key(env.account, msg.client_id),
        sender=Sender("sdk", msg.user_id, msg.name, scope=env.account),
        subject=first_line[:80] or "App conversation",
        text=msg.text,
        attachments=[Attachment(safe_filename(u["filename"]), u["content_type"], b"", blob_key=u["blob_key"], known_size=u["size"])
                     for u in uploads],
        sent_at=msg.sent_at,
        thread_refs=[key],
        thread_root=key,
        headers={"sdk": {"conversation": msg.conversation, "client_id": msg.client_id, "user": msg.user_id}
                 | ({"fields": msg.custom} if msg.custom else {})},
        also=also,
        custom=dict(msg.custom),
    )]
