"""Callback tasks: a reply on a phone ticket is a call to make; the call's record closes it.

The call center posts the call it made as a call record with ``callback_of`` = the reply's
message id. Answered or completed: the task is ``delivered``; a call that ended otherwise
(no answer, busy, failed, …) fails the task with that status, and an agent decides again.
A ringing or queued report changes nothing. Synchronous, inside the normalizer's transaction.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.engine import Connection

from ticket_service.store.tables import outbox

REACHED = frozenset({"answered", "completed"})
NOT_REACHED = {"missed": "no-answer", "busy": "busy", "failed": "failed", "abandoned": "abandoned",
               "voicemail": "voicemail"}  # the call status -> the delivery's error code


def close_callback(conn: Connection, tenant_id: int, call: dict, now: int) -> bool:
    """Close the task ``call`` names, if it is still open; whether a task was closed."""
    task, status = call.get("callback_of") or "", call.get("status") or ""
    if not task or (status not in REACHED and status not in NOT_REACHED):
        return False
    values: dict = {"attempts": outbox.c.attempts + 1, "platform_id": str(call.get("id") or "")[:255]}
    if status in REACHED:
        values |= {"status": "delivered", "sent_at": now, "last_error_code": "", "last_error": ""}
    else:
        values |= {"status": "failed", "last_error_code": NOT_REACHED[status],
                   "last_error": f"callback call {call.get('id')}: {status}"}
    return bool(conn.execute(update(outbox).where(
        outbox.c.tenant_id == tenant_id, outbox.c.message_id == int(task), outbox.c.mode == "callback",
        outbox.c.status == "queued").values(**values)).rowcount)
