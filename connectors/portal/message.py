"""A status-page message on the wire: what the page publishes and ``parse`` reads back."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

CONTENT_TYPE = "application/vnd.switchboard.portal+json"


@dataclass(frozen=True, slots=True)
class PortalMessage:
    """One message a customer added on the page of a ticket whose link the page verified.

    ``submission`` is the id of the form it was typed into: a form sent twice is one message.
    ``reply_token`` is the ticket's signed reply token, which threads it to that ticket.
    ``sender`` is the customer's identity (kind, scope, value) and name, as the store has it.
    """

    ticket_id: int
    reply_token: str
    submission: str
    sender: tuple[str, str, str, str]
    text: str
    filename: str = ""
    content_type: str = ""
    data: bytes = b""

    def to_bytes(self) -> bytes:
        doc = {"v": 1, "ticket_id": self.ticket_id, "reply_token": self.reply_token,
               "submission": self.submission, "sender": list(self.sender), "text": self.text}
        if self.filename:
            doc["file"] = {"filename": self.filename, "content_type": self.content_type,
                           "data": base64.b64encode(self.data).decode("ascii")}
        return json.dumps(doc, ensure_ascii=False).encode()

    @classmethod
    def from_bytes(cls, payload: bytes) -> PortalMessage:
        """The message, or ValueError/KeyError/TypeError for a payload the page did not write."""
        doc = json.loads(payload)
        if doc.get("v") != 1:
            raise ValueError(f"unknown portal payload version {doc.get('v')!r}")
        kind, scope, value, name = (str(x) for x in doc["sender"])
        file = doc.get("file") or {}
        return cls(
            ticket_id=int(doc["ticket_id"]), reply_token=str(doc["reply_token"]),
            submission=str(doc["submission"]), sender=(kind, scope, value, name), text=str(doc["text"]),
            filename=str(file.get("filename", "")), content_type=str(file.get("content_type", "")),
            data=base64.b64decode(file.get("data", ""), validate=True),
        )

    def dedup_key(self) -> str:
        return f"portal:{self.ticket_id}:{self.submission}"
