"""``parse``: one Weibo push (JSON, verified at the edge) -> ``Inbound``."""

from __future__ import annotations

import hashlib
import json

from connectors.inbound import Inbound, Sender
from connectors.weibo.message import OPENING_EVENTS, NotAPush, describe, kept, read
from core.envelope import Envelope
from core.errors import PermanentError


def parse(env: Envelope) -> list[Inbound]:
    try:
        doc = read(env.payload)
    except NotAPush as exc:
        raise PermanentError(f"not a Weibo push: {exc}") from None
    if not kept(doc):
        return []
    kind, data, uid = doc["type"], doc["data"], doc["sender_id"]
    subtype = str(data.get("subtype", "")).lower()
    auto = f"weibo_{subtype}" if kind == "event" and subtype not in OPENING_EVENTS else ""
    # The message id when present, else sender uid + created_at + type + content hash: pushes
    # carry no id, Weibo's guide dedups their retries by sender + creation time, and the
    # content's hash keeps two messages sent within one second two.
    content = hashlib.sha256(json.dumps([doc.get("text"), data], sort_keys=True).encode()).hexdigest()[:16]
    dedup = doc.get("id") or f"{uid}:{doc['created_ms']}:{kind}:{subtype}:{content}"
    text = describe(doc)
    info = {"type": kind, "receiver_id": doc["receiver_id"]}
    info.update({k: str(v) for k, v in data.items() if k in ("subtype", "key", "ticket", "vfid", "tovfid",
                                                              "longitude", "latitude")})
    return [Inbound(
        dedup_key=f"weibo:{env.account}:{dedup}",
        sender=Sender("weibo", uid),
        subject=text.splitlines()[0][:80] if text else f"[{kind}]",
        text=text,
        sent_at=doc["created_ms"],
        session_key=f"weibo:{uid}",
        auto_reason=auto,
        headers={"weibo": info},
    )]
