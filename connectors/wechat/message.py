"""What a WeChat push holds: the message and event types we keep, and what each one says."""

from __future__ import annotations

from connectors.push import Reject
from core import keys

CHANNEL = "wechat"
STREAM = keys.ingest_stream(CHANNEL)

# Events worth a record. CLICK is a customer pressing a menu item (often "contact us"), so it
# may open a ticket; the others are recorded on an open session but never open one.
EVENTS = {"subscribe", "unsubscribe", "scan", "click", "view"}
OPENING_EVENTS = {"click"}
# Media the API can fetch later (media/get) or that the message links to.
MEDIA_FIELDS = ("MediaId", "ThumbMediaId", "Format", "PicUrl", "Url")


def check_message(msg: dict[str, str]) -> None:
    """The fields every push has; a message also needs its numeric MsgId (the dedup key)."""
    for name in ("FromUserName", "MsgType", "CreateTime"):
        if not msg.get(name):
            raise Reject(400, "malformed", f"push lacks {name}")
    if not msg["CreateTime"].isdigit():
        raise Reject(400, "malformed", "CreateTime is not a number")
    if msg["MsgType"] == "event":
        if not msg.get("Event"):
            raise Reject(400, "malformed", "event push lacks Event")
    elif not msg.get("MsgId", "").isdigit():
        raise Reject(400, "malformed", "message push lacks a numeric MsgId")


def describe(msg: dict[str, str]) -> str:
    """The message as text an agent can read."""
    kind = msg["MsgType"]
    if kind == "text":
        return msg.get("Content", "")
    if kind == "voice":
        # Recognition is present only when the account has speech recognition switched on.
        heard = msg.get("Recognition", "")
        return f"[voice] {heard}" if heard else "[voice]"
    if kind == "location":
        place = msg.get("Label", "")
        return f"[location] {place} ({msg.get('Location_X', '')}, {msg.get('Location_Y', '')})".replace("  ", " ")
    if kind == "link":
        return "\n".join(p for p in ("[link] " + msg.get("Title", ""), msg.get("Description", ""), msg.get("Url", "")) if p)
    if kind == "event":
        event = msg.get("Event", "").lower()
        key = msg.get("EventKey", "")
        return f"[event {event}] {key}".strip()
    return f"[{kind}]"
