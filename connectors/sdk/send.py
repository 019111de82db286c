"""Replies to an in-app conversation: pushed to the app's server when it set ``push_url``.

The push is signed like the app's own requests (docs/sdk.md): ``X-SB-Timestamp`` and
``X-SB-Signature`` = HMAC-SHA256(app secret, timestamp + "." + body). Its ``id`` is the outbox
handle, the same on every retry, so the app's server drops a repeated push. Without a
``push_url`` the reply is already readable through ``GET …/conversations/{id}/messages``.
The conversation id travels in ``Outgoing.references[0]``.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

from connectors.delivery import request, snippet
from connectors.push import clock_s
from connectors.sdk.signing import SIGNATURE, TIMESTAMP, sign
from core.outbound import Outgoing, PermanentFailure, SendContext, Sent, TemporaryFailure

# Answers worth another try besides 5xx: request timeout and too many requests.
RETRYABLE_4XX = frozenset({408, 425, 429})


def push_body(out: Outgoing) -> bytes:
    """The JSON the app's server receives, exactly the bytes that are signed."""
    if not out.references or not out.references[0]:
        raise PermanentFailure("no_conversation", "the reply names no SDK conversation to push to")
    return json.dumps({
        "id": out.handle or f"outbox-{out.outbox_id}",
        "conversation": out.references[0],
        "user": {"id": out.to},
        "text": out.text,
        "attachments": [{"filename": f.filename, "content_type": f.content_type, "size": len(f.data),
                         "data": base64.b64encode(f.data).decode()} for f in out.attachments],
        "sent_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }, ensure_ascii=False, separators=(",", ":")).encode()


async def send(out: Outgoing, ctx: SendContext) -> Sent:
    """POST the reply to the app's ``push_url``; without one it waits in the conversation."""
    url = str(out.account_settings.get("push_url", "") or "")
    if not url:
        return Sent(platform_id="conversation")
    secret = str(out.account_settings.get("secret", "") or "")
    if not secret:
        raise PermanentFailure("not_configured", "the app has a push_url but no secret to sign pushes with")
    body, timestamp = push_body(out), str(clock_s())
    headers = {"Content-Type": "application/json; charset=utf-8", TIMESTAMP: timestamp,
               SIGNATURE: sign(secret, timestamp, body)}
    status, answer = await request(ctx.http, "POST", url, "the app's push_url", data=body,
                                   headers=headers, allow_redirects=False)
    if 200 <= status < 300:
        return Sent(platform_id=out.handle or f"outbox-{out.outbox_id}")
    reason = f"the app's push_url answered HTTP {status}: {snippet(answer)}"
    if status >= 500 or status in RETRYABLE_4XX:
        raise TemporaryFailure(f"http_{status}", reason)
    raise PermanentFailure(f"http_{status}", reason)
