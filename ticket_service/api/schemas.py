"""Component schemas of the OpenAPI document shared by several API modules: the error shape,
tickets, messages and attachments as ``tickets.ticket_json`` and ``tickets.message_json`` write them."""

from __future__ import annotations

from ticket_service.api.spec import ERROR, NULLABLE_STRING, TIME, obj, ref

_TEXT, _INT = {"type": "string"}, {"type": "integer"}
_ATTACHMENT = obj(("id", "filename", "content_type", "size", "sha256", "inline", "url"), id=_INT, filename=_TEXT,
                  content_type=_TEXT, size=_INT, sha256=_TEXT, inline={"type": "boolean"}, url=_TEXT)
_THREADING = {"anyOf": [{"type": "null"}, obj(("rule", "trail"), rule=_TEXT, trail={"type": "array", "items": obj(
    ("rule", "hit", "why"), rule=_TEXT, hit={"type": "boolean"}, why=_TEXT)})]}
_DELIVERY = {"anyOf": [{"type": "null"}, obj(
    ("status", "channel", "attempts", "error", "sent_at"), status=_TEXT, channel=_TEXT, attempts=_INT,
    error={"anyOf": [{"type": "null"}, obj(("code", "message"), code=_TEXT, message=_TEXT)]}, sent_at=TIME,
    callback=obj(("number",), number=_TEXT), next_attempt_at=TIME)]}
MESSAGE_PROPS = dict(
    id=_INT, direction={"enum": ["in", "out"]}, channel=_TEXT, sender=_TEXT, sender_name=_TEXT, subject=_TEXT,
    text=_TEXT, html=_TEXT, auto_reason=_TEXT, kind={"enum": ["reply", "note", "notify", ""]},
    author_id={"type": ["integer", "null"]}, delivery=_DELIVERY, attachments={"type": "array", "items": ref("Attachment")},
    created_at=TIME, threading=_THREADING,
)
MESSAGE_REQUIRED = ("id", "direction", "channel", "sender", "sender_name", "subject", "text", "html", "auto_reason",
                    "attachments", "created_at", "threading")
_TICKET_PROPS = dict(
    id=_INT, number=_INT, subject=_TEXT, status={"enum": ["new", "open", "pending", "solved", "closed"]},
    channel=_TEXT, priority=_INT,
    customer=obj(("id", "name", "vip_tier"), id=_INT, name=_TEXT, vip_tier=_INT),
    assignee={"anyOf": [{"type": "null"}, obj(("id", "name"), id=_INT, name=_TEXT)]},
    tags={"type": "array", "items": _TEXT}, auto={"type": "boolean"}, auto_reason=NULLABLE_STRING,
    created_at=TIME, updated_at=TIME, fields=ref("FieldValues"),
)
_CLOCK = obj(("state", "due_at", "met_at", "breached_at"), state={"enum": ["running", "paused", "met", "breached"]},
            due_at=TIME, met_at=TIME, breached_at=TIME, remaining_s={"type": "number"})
_SLA = {"anyOf": [{"type": "null"}, obj(("policy",), policy=_TEXT, first_reply=_CLOCK, next_reply=_CLOCK,
                                        resolution=_CLOCK)]}
SCHEMAS = {
    "Error": ERROR,
    "Attachment": _ATTACHMENT,
    "Message": obj(MESSAGE_REQUIRED, **MESSAGE_PROPS),
    "Ticket": obj(tuple(_TICKET_PROPS), **_TICKET_PROPS),
    "TicketDetail": obj((*_TICKET_PROPS, "messages", "sla"), **_TICKET_PROPS,
                        messages={"type": "array", "items": ref("Message")}, sla=_SLA),
}
