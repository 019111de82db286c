"""``parse``: one form submission (raw body + the form's field mapping) -> ``Inbound``."""

from __future__ import annotations

import hashlib

from connectors.contact import FieldError
from connectors.inbound import Attachment, Inbound, Sender
from connectors.webform.body import BadForm, UnsupportedType, read
from connectors.webform.spec import Contact, FormSpec, contact
from core.envelope import Envelope
from core.errors import PermanentError

CHANNEL = "webform"


def dedup_key(account: str, token: str, payload: bytes) -> str:
    """The client's submission token when it sent one, else the body's hash (a double submit)."""
    if token:
        return f"webform:{account}:token:{token}"
    return f"webform:{account}:sha256:{hashlib.sha256(payload).hexdigest()}"


def sender(c: Contact, key: str) -> tuple[Sender, list[Sender]]:
    """Email first, then phone; an anonymous submission is a customer of its own."""
    people = [Sender("email", c.email, c.name)] if c.email else []
    people += [Sender("phone", c.phone, c.name)] if c.phone else []
    if not people:
        return Sender("webform", key, c.name), []
    return people[0], people[1:]


def parse(env: Envelope) -> list[Inbound]:
    try:
        spec = FormSpec.from_meta(env.meta["form"])
        sub = read(env.content_type, env.payload)
        c = contact(spec, sub)
    except (KeyError, ValueError, BadForm, UnsupportedType, FieldError) as exc:
        raise PermanentError(f"not a form submission this form accepts: {exc}") from None
    key = dedup_key(env.account, c.token, env.payload)
    who, also = sender(c, key)
    text = c.body
    if c.custom:
        text += "\n\n" + "\n".join(f"{name}: {value}" for name, value in c.custom.items())
    first_line = next((line.strip() for line in c.body.splitlines() if line.strip()), "")
    return [Inbound(
        dedup_key=key, sender=who, subject=c.subject or first_line[:80] or "Web form",
        text=text.strip(), ticket_number=c.ticket_number, also=also, custom=dict(c.custom),
        attachments=[Attachment(f.filename or "upload", f.content_type, f.data) for f in sub.files],
        headers={"form": {"custom": c.custom, "origin": env.meta.get("origin", ""),
                          "envelope_id": env.id, "token": c.token}},
    )]
