"""Aliyun SMS uplink (SmsUp, 上行短信) in HTTP batch push mode (HTTP批量推送模式).

Aliyun "SmsUp": the body is a JSON array, "单次请求可能包含多个上行短信内容", each item with
phone_number, content, send_time ("2017-09-01 00:00:00"), dest_code, sequence_id (a Number in
the older page, a String in the newer) and, in the older page, sign_name. The answer is
``{"code": 0, "msg": "接收成功"}``; "HTTP状态码非200或响应超时情况下，系统会重试推送" (after
1, 5 and 10 minutes, then never again).

The push carries no signature. The business puts a secret token in the URL it gives Aliyun
(``?token=…``, the account's ``token`` setting); see docs/sms.md.
"""

from __future__ import annotations

import hmac
import json
import re
from datetime import datetime, timedelta, timezone

from connectors.contact import FieldError
from connectors.sms.message import MAX_TEXT, Sms

ANSWER = {"code": 0, "msg": "接收成功"}
# One push is one stream entry a normalizer stores in one go (as voice record batches are).
MAX_BATCH = 1000
MAX_BODY = 1024 * 1024  # 1,000 long messages
MIN_TOKEN = 16
_CHINA = timezone(timedelta(hours=8))  # send_time is the carrier's time in China, without an offset
_PHONE = re.compile(r"^\+?[0-9][0-9 -]{0,31}$")


def token_problem(settings: dict, sent: str) -> str:
    """"" when ``sent`` is the account's token, else the reason (a short or no token accepts nothing)."""
    want = str(settings.get("token", ""))
    if len(want) < MIN_TOKEN:
        return "token_not_configured"
    if not sent:
        return "missing_token"
    return "" if hmac.compare_digest(sent.encode(), want.encode()) else "bad_token"


def _text(item: dict, name: str, where: str, limit: int, required: bool = False) -> str:
    value = item.get(name)
    if value is None or value == "":
        if required:
            raise FieldError("missing_field", f"{where}'{name}' is required")
        return ""
    if not isinstance(value, str) or len(value) > limit:
        raise FieldError("invalid_field", f"{where}'{name}' must be a string of at most {limit} characters")
    return value


def _sequence(item: dict, where: str) -> str:
    value = item.get("sequence_id")
    if value is None or value == "":
        raise FieldError("missing_field", f"{where}'sequence_id' is required")
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63:
        return str(value)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 32:
        return str(int(value))
    raise FieldError("invalid_field", f"{where}'sequence_id' must be a whole number")


def _time(raw: str, where: str) -> int | None:
    if not raw:
        return None
    try:
        when = datetime.strptime(raw, "%Y-%m-%d %H:%M:%S").replace(tzinfo=_CHINA)
    except ValueError:
        raise FieldError("invalid_field", f"{where}'send_time' must be 'YYYY-MM-DD HH:MM:SS'") from None
    return int(when.timestamp() * 1000)


def item(doc: object, where: str = "") -> Sms:
    """One uplink object -> ``Sms``; ``where`` prefixes errors (``[3].``)."""
    if not isinstance(doc, dict):
        raise FieldError("malformed", f"{where.rstrip('.') or 'the item'} must be an object")
    phone = _text(doc, "phone_number", where, 32, required=True).strip()
    if not _PHONE.match(phone):
        raise FieldError("invalid_field", f"{where}'phone_number' must be a phone number")
    content = _text(doc, "content", where, MAX_TEXT)
    if "content" not in doc:
        raise FieldError("missing_field", f"{where}'content' is required")
    extra = {name: _text(doc, name, where, 100) for name in ("sign_name", "send_time")}
    return Sms(
        id=_sequence(doc, where), provider="aliyun", sender=phone, text=content,
        to=_text(doc, "dest_code", where, 32), sent_at=_time(extra["send_time"], where),
        extra={k: v for k, v in extra.items() if v},
    )


def read(body: bytes, max_batch: int | None = MAX_BATCH) -> list[Sms]:
    """A push body -> its messages; any bad item refuses the whole push (nothing half-queued).

    ``max_batch=None``: no bound (the worker re-reads what the edge already bounded).
    """
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise FieldError("malformed", f"malformed JSON: {exc}") from None
    if not isinstance(doc, list):
        raise FieldError("malformed", "body is not a JSON array of uplink messages")
    if max_batch is not None and len(doc) > max_batch:
        raise FieldError("too_many_messages", f"{len(doc)} messages in one push, at most {max_batch} allowed")
    return [item(d, f"[{i}].") for i, d in enumerate(doc)]
