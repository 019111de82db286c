"""Weibo's JSON pushes: the types we keep, their dedup key and what each one says.

Message push guide: every push is ``{type, receiver_id, sender_id, created_at, text, data}``;
unknown types and subtypes are to be ignored. Dedup key (``parse``): the message id when
present, else sender uid + created_at + type (and event subtype) + content hash. Pushes carry
no id, so a retry is recognised the way Weibo recommends, by sender_id + created_at; the
content hash keeps two messages sent within one second apart.
"""

from __future__ import annotations

import json
from datetime import datetime

from core import keys

CHANNEL = "weibo"
STREAM = keys.ingest_stream(CHANNEL)
MESSAGES = {"text", "image", "voice", "position", "mention"}
# Event subtypes we record; a menu click may open a ticket, the rest never do.
EVENTS = {"follow", "unfollow", "subscribe", "unsubscribe", "scan", "scan_follow", "click", "view"}
OPENING_EVENTS = {"click"}
_TIME = "%a %b %d %H:%M:%S %z %Y"  # "Mon Jul 16 18:09:20 +0800 2012"


class NotAPush(ValueError):
    pass


def read(body: bytes) -> dict:
    """The push as a dict with ``type``, numeric-text ``sender_id``, ``created_at`` ms and ``data``."""
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise NotAPush(f"malformed JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise NotAPush("JSON body is not an object")
    for name in ("type", "sender_id", "receiver_id", "created_at"):
        if doc.get(name) in (None, ""):
            raise NotAPush(f"push lacks {name}")
    sender = str(doc["sender_id"])
    if not sender.isascii() or not sender.isdigit():
        raise NotAPush("sender_id is not a uid")
    try:
        created = int(datetime.strptime(str(doc["created_at"]), _TIME).timestamp() * 1000)
    except ValueError:
        raise NotAPush(f"created_at {doc['created_at']!r} is not Weibo's time format") from None
    data = doc.get("data") or {}
    if not isinstance(data, dict):
        raise NotAPush("data is not an object")
    return {**doc, "sender_id": sender, "receiver_id": str(doc["receiver_id"]), "created_ms": created, "data": data}


def kept(doc: dict) -> bool:
    """Whether a push is worth a record (unknown types and subtypes are ignored)."""
    if doc["type"] == "event":
        return str(doc["data"].get("subtype", "")).lower() in EVENTS
    return doc["type"] in MESSAGES


def describe(doc: dict) -> str:
    kind, data, text = doc["type"], doc["data"], str(doc.get("text", ""))
    if kind in ("text", "mention"):
        return text
    if kind == "position":
        return f"[position] {data.get('latitude', '')}, {data.get('longitude', '')}"
    if kind in ("image", "voice"):
        return f"[{kind}]"
    subtype = str(data.get("subtype", "")).lower()
    return f"[event {subtype}] {data.get('key', '')}".strip()
