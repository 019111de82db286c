"""The JSON message an app sends, validated the same way at the edge and in ``parse``."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field

from connectors.contact import FieldError, e164
from connectors.contact import email as checked_email

_CONVERSATION = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_UPLOAD = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
MAX_TEXT, MAX_ATTACHMENTS = 10_000, 10
MAX_FIELDS, MAX_FIELD_NAME, MAX_FIELD_VALUE = 50, 100, 2000
MAX_SENT_AT = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z: any later number is no clock's reading


@dataclass(slots=True)
class AppMessage:
    client_id: str  # the client's message uuid, the idempotency key
    conversation: str
    user_id: str
    text: str = ""
    email: str = ""
    phone: str = ""
    name: str = ""
    uploads: list[str] = field(default_factory=list)
    sent_at: int | None = None
    custom: dict[str, str] = field(default_factory=dict)  # ``fields``: the app's own, as text


def _custom(value: object) -> dict[str, str]:
    """``fields``: the app's named values (text or numbers), which an account may map to custom fields."""
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_FIELDS or not all(
            isinstance(k, str) and 0 < len(k) <= MAX_FIELD_NAME and type(v) in (str, int, float)
            and len(str(v)) <= MAX_FIELD_VALUE for k, v in value.items()):
        raise FieldError("invalid_field", f"'fields' must be an object of at most {MAX_FIELDS} names "
                         f"(up to {MAX_FIELD_NAME} characters) with text or number values "
                         f"(up to {MAX_FIELD_VALUE} characters)")
    return {k: str(v) for k, v in value.items()}


def _str(doc: dict, name: str, limit: int, required: bool = False) -> str:
    value = doc.get(name, "")
    if not isinstance(value, str):
        raise FieldError("invalid_field", f"{name!r} must be a string")
    value = value.strip()
    if required and not value:
        raise FieldError("missing_field", f"{name!r} is required")
    if len(value) > limit:
        raise FieldError("invalid_field", f"{name!r} is over {limit} characters")
    return value


def read(body: bytes, region: str = "CN") -> AppMessage:
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise FieldError("malformed", f"malformed JSON: {exc}") from None
    except RecursionError:
        raise FieldError("malformed", "JSON nested too deeply") from None
    if not isinstance(doc, dict):
        raise FieldError("malformed", "JSON body is not an object")
    client_id = _str(doc, "id", 64, required=True)
    try:
        client_id = str(uuid.UUID(client_id))
    except ValueError:
        raise FieldError("invalid_field", "'id' must be a UUID") from None
    conversation = _str(doc, "conversation", 128, required=True)
    if not _CONVERSATION.match(conversation):
        raise FieldError("invalid_field", "'conversation' must be 1-128 of A-Z a-z 0-9 . _ : -")
    user = doc.get("user")
    if not isinstance(user, dict):
        raise FieldError("missing_field", "'user' object with an 'id' is required")
    msg = AppMessage(client_id, conversation, _str(user, "id", 128, required=True), text=_str(doc, "text", MAX_TEXT),
                     name=_str(user, "name", 200))
    if email := _str(user, "email", 254):
        msg.email = checked_email(email, "user.email")
    if phone := _str(user, "phone", 40):
        msg.phone = e164(phone, region, "user.phone")
    uploads = doc.get("attachments", [])
    if not isinstance(uploads, list) or len(uploads) > MAX_ATTACHMENTS or not all(
        isinstance(u, str) and _UPLOAD.match(u) for u in uploads
    ):
        raise FieldError("invalid_field", f"'attachments' must be at most {MAX_ATTACHMENTS} upload ids")
    msg.uploads = list(dict.fromkeys(uploads))
    if not msg.text and not msg.uploads:
        raise FieldError("missing_field", "a message needs 'text' or 'attachments'")
    sent_at = doc.get("sent_at")
    if sent_at is not None and (type(sent_at) is not int or not 0 <= sent_at <= MAX_SENT_AT):
        raise FieldError("invalid_field", f"'sent_at' must be epoch milliseconds from 0 to {MAX_SENT_AT}")
    msg.sent_at = sent_at
    msg.custom = _custom(doc.get("fields"))
    return msg
