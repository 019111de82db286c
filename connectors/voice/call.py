"""One call's state, as every source (records, Twilio, FreeSWITCH) reports it, and its merge.

Call centers report a call as several events (ringing, answered, completed, recording
ready), in any order and with retries. ``merge`` folds two states of one call into the
more advanced one, so the stored message ends in the same state whatever the arrival order.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from core.channel import Merge

# How far a call has got; a later stage never goes back to an earlier one.
STATUS_RANK = {
    "": 0, "queued": 1, "ringing": 2, "answered": 3, "completed": 4, "failed": 5, "busy": 5,
    "missed": 6, "abandoned": 7, "voicemail": 8,
}
STATUSES = tuple(s for s in STATUS_RANK if s)
CALLBACK = ("missed", "abandoned", "voicemail", "busy")  # someone has to call the customer back
CALLBACK_TAG = "callback"
_EARLIEST, _LATEST = ("started_at", "answered_at"), ("ended_at", "duration", "talk_time")


@dataclass(slots=True)
class Call:
    """What is known of one call; empty strings and ``None`` mean "not reported (yet)"."""

    id: str
    source: str  # records | twilio | freeswitch
    status: str = ""
    direction: str = "inbound"
    caller: str = ""  # the customer's number as sent (E.164 after normalization)
    callee: str = ""  # the number the customer dialled (or, outbound, was dialled from)
    caller_name: str = ""
    agent: str = ""
    queue: str = ""
    disposition: str = ""
    hangup_cause: str = ""
    started_at: int | None = None  # epoch ms
    answered_at: int | None = None
    ended_at: int | None = None
    duration: int | None = None  # seconds, ringing included
    talk_time: int | None = None  # seconds, answered part only (billsec)
    recording: str = ""  # URL (or a file path on the PBX)
    recording_id: str = ""
    transcript: str = ""
    ivr_path: list[str] = field(default_factory=list)
    callback_of: str = ""  # the reply message id of the callback task this call carried out

    def to_doc(self) -> dict:
        return asdict(self)

    @classmethod
    def from_doc(cls, doc: dict) -> Call:
        return cls(**{k: v for k, v in doc.items() if k in cls.__slots__})


def _rank(doc: dict) -> tuple[int, str, str]:
    """Order of precedence; two reports of one stage are ordered by content, not arrival."""
    status = doc.get("status", "")
    return STATUS_RANK.get(status, 0), status, json.dumps(doc, sort_keys=True, ensure_ascii=False)


def merge(old: dict, new: dict) -> dict:
    """The state after both reports, independent of which arrived first.

    The more advanced report's non-empty fields win; times keep the earliest start and the
    latest end; the longer IVR path wins.
    """
    low, high = sorted((old, new), key=_rank)
    out = dict(low)
    out.update({k: v for k, v in high.items() if v not in ("", None, [])})
    for name, pick in [*((n, min) for n in _EARLIEST), *((n, max) for n in _LATEST)]:
        values = [d.get(name) for d in (old, new) if d.get(name) is not None]
        out[name] = pick(values) if values else None
    out["ivr_path"] = max(old.get("ivr_path") or [], new.get("ivr_path") or [], key=len)
    return out


def needs_callback(doc: dict) -> bool:
    return doc.get("status") in CALLBACK


def _clock(seconds: int | None) -> str:
    return "" if seconds is None else f"{seconds // 60}:{seconds % 60:02d}"


def summary(doc: dict) -> str:
    """The message text agents read: who, what happened, how long, recording, transcript."""
    way = "Outbound call to" if doc.get("direction") == "outbound" else "Call from"
    lines = [f"{way} {doc.get('caller') or 'an unknown number'}: {doc.get('status') or 'reported'}"]
    details = [f"{label} {value}" for label, value in (
        ("agent", doc.get("agent")), ("queue", doc.get("queue")), ("duration", _clock(doc.get("duration"))),
        ("talk time", _clock(doc.get("talk_time"))), ("disposition", doc.get("disposition")),
        ("hangup", doc.get("hangup_cause")),
    ) if value]
    if details:
        lines.append(", ".join(details))
    if doc.get("ivr_path"):
        lines.append("IVR: " + " > ".join(doc["ivr_path"]))
    if doc.get("recording"):
        lines.append(f"Recording: {doc['recording']}")
    if doc.get("transcript"):
        lines.append(f"Transcript: {doc['transcript']}")
    return "\n".join(lines)


def subject(doc: dict) -> str:
    if needs_callback(doc):
        return f"Call back {doc.get('caller') or 'caller'} ({doc['status']})"
    return f"Phone call {doc.get('caller') or ''}".strip()


def on_duplicate(stored: dict, inbound) -> Merge | None:
    """A later event of a stored call: the merged state, or None when it adds nothing."""
    state = merge(stored.get("call", {}), inbound.headers["call"])
    if state == stored.get("call"):
        return None
    return Merge(headers={**stored, "call": state}, text=summary(state), subject=subject(state),
                 tags=(CALLBACK_TAG,) if needs_callback(state) else ())
