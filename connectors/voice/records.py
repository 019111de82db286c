"""Generic call records (docs/voice.md): one JSON object or ``{"records": [...]}`` in bulk.

Validated the same way at the edge (the whole batch, before anything is queued) and in
``parse``.
"""

from __future__ import annotations

import json
import re
from datetime import datetime

from connectors.contact import FieldError
from connectors.voice.call import STATUSES, Call

# One post is one stream entry a normalizer stores in one go: 1,000 calls take a few seconds,
# well inside the visibility timeout.
MAX_RECORDS = 1000
MAX_TRANSCRIPT = 100_000
MAX_MS, MAX_SECONDS = 10**13, 10**7  # up to the year 2286; a call of four months
_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")
_STATUS_ALIASES = {"in-progress": "answered", "no-answer": "missed", "canceled": "missed"}


def _str(doc: dict, name: str, where: str, limit: int = 200) -> str:
    value = doc.get(name, "")
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > limit:
        raise FieldError("invalid_field", f"{where}{name!r} must be a string of at most {limit} characters")
    return value.strip()


def _time(doc: dict, name: str, where: str) -> int | None:
    """Epoch milliseconds, or an ISO 8601 time with its UTC offset."""
    value = doc.get(name)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < MAX_MS:
        return value
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None and 0 <= parsed.timestamp() * 1000 < MAX_MS:
            return int(parsed.timestamp() * 1000)
    raise FieldError("invalid_field", f"{where}{name!r} must be epoch milliseconds or ISO 8601 with an offset")


def _seconds(doc: dict, name: str, where: str) -> int | None:
    value = doc.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < MAX_SECONDS:
        raise FieldError("invalid_field", f"{where}{name!r} must be a whole number of seconds")
    return value


def record(doc: object, where: str = "") -> Call:
    """One record object -> ``Call``; ``where`` prefixes errors (``records[3].``)."""
    if not isinstance(doc, dict):
        raise FieldError("malformed", f"{where.rstrip('.') or 'the record'} must be an object")
    call_id = _str(doc, "id", where, 128)
    if not call_id:
        raise FieldError("missing_field", f"{where}'id' (the call id) is required")
    if not _ID.match(call_id):
        raise FieldError("invalid_field", f"{where}'id' must be 1-128 of A-Z a-z 0-9 . _ : @ -")
    status = _STATUS_ALIASES.get(_str(doc, "status", where), _str(doc, "status", where))
    if status not in STATUSES:
        raise FieldError("invalid_field" if status else "missing_field",
                         f"{where}'status' must be one of {', '.join(STATUSES)}")
    direction = _str(doc, "direction", where) or "inbound"
    if direction not in ("inbound", "outbound"):
        raise FieldError("invalid_field", f"{where}'direction' must be inbound or outbound")
    recording = _str(doc, "recording_url", where, 2000)
    if recording and not recording.startswith(("https://", "http://")):
        raise FieldError("invalid_field", f"{where}'recording_url' must be an http(s) URL")
    customer, ours = ("to", "from") if direction == "outbound" else ("from", "to")
    ivr = doc.get("ivr_path", [])
    if not isinstance(ivr, list) or len(ivr) > 50 or not all(isinstance(s, str) and len(s) <= 100 for s in ivr):
        raise FieldError("invalid_field", f"{where}'ivr_path' must be a list of at most 50 short strings")
    return Call(
        id=call_id, source="records", status=status, direction=direction,
        caller=_str(doc, customer, where, 64), callee=_str(doc, ours, where, 64),
        caller_name=_str(doc, "caller_name", where), agent=_str(doc, "agent", where),
        queue=_str(doc, "queue", where), disposition=_str(doc, "disposition", where),
        started_at=_time(doc, "started_at", where), answered_at=_time(doc, "answered_at", where),
        ended_at=_time(doc, "ended_at", where), duration=_seconds(doc, "duration", where),
        talk_time=_seconds(doc, "talk_time", where), recording=recording,
        transcript=_str(doc, "transcript", where, MAX_TRANSCRIPT), ivr_path=[s.strip() for s in ivr],
        callback_of=_callback_of(doc, where),
    )


def _callback_of(doc: dict, where: str) -> str:
    """The reply message id (``GET /api/v1/tickets/{id}``) of the callback task this call made."""
    value = doc.get("callback_of")
    if value is None or value == "":
        return ""
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not text.isdecimal() or not 0 < len(text) <= 18 or int(text) == 0:
        raise FieldError("invalid_field", f"{where}'callback_of' must be the reply's message id (a positive integer)")
    return str(int(text))


def read(body: bytes, max_records: int = MAX_RECORDS) -> list[Call]:
    """A body -> its calls; any bad record refuses the whole post (nothing half-queued)."""
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise FieldError("malformed", f"malformed JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise FieldError("malformed", "JSON body is not an object")
    if "records" not in doc:
        return [record(doc)]
    batch = doc["records"]
    if not isinstance(batch, list) or not batch:
        raise FieldError("invalid_field", "'records' must be a non-empty list of call records")
    if len(batch) > max_records:
        raise FieldError("too_many_records", f"{len(batch)} records in one post, at most {max_records} allowed")
    return [record(r, f"records[{i}].") for i, r in enumerate(batch)]
