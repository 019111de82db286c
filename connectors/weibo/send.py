"""Replies to a Weibo fan through the fan service's customer-service message API.

Fan service docs, "Send Customer Service Message": ``POST {api_base}/2/messages/reply.json``,
form-encoded ``access_token``, ``type`` (text), ``data`` (the JSON ``{"text": …}``, URL-encoded,
UTF-8), ``receiver_id`` and ``save_sender_box`` (0/1, default 1); a text is under 300 Chinese
characters, and the account may reply within 48 hours of the fan's last message. Errors come
as ``{"error": …, "error_code": …, "request": …}``. A longer reply goes out in parts; a part
Weibo accepted is remembered so a retry does not repeat it.
"""

from __future__ import annotations

import json
from typing import Any

from connectors.delivery import Parts, json_object, request
from connectors.weibo.message import CHANNEL
from core.outbound import Outgoing, PermanentFailure, SendContext, Sent, TemporaryFailure

DEFAULT_API_BASE = "https://m.api.weibo.com"  # the host the fan service docs give for messages/reply
REPLY = "/2/messages/reply.json"
TEXT_LIMIT = 300
# Weibo error codes: the token is used up, expired, revoked, rejected or invalid.
TOKEN_ERRORS = frozenset({21314, 21315, 21316, 21317, 21327, 21332, 21501})
# 10022/10023/10024: IP, user and per-API rate limits (hourly); 10001/10003/10009: Weibo busy.
RETRY_AFTER_S = {10022: 300.0, 10023: 300.0, 10024: 300.0, 10001: 30.0, 10003: 30.0, 10009: 30.0}


def failure(answer: dict[str, Any]) -> TemporaryFailure | PermanentFailure:
    code, words = int(answer.get("error_code", 0) or 0), str(answer.get("error", ""))
    if code in RETRY_AFTER_S:
        return TemporaryFailure(str(code), words, retry_after_s=RETRY_AFTER_S[code])
    if code in TOKEN_ERRORS:
        return PermanentFailure(str(code), f"{words}: renew the account's access_token setting "
                                "(fan service platform, developer mode)")
    return PermanentFailure(str(code), words)


def chunks(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """``text`` in pieces of at most ``limit`` characters, cut at a line break or space when one is near."""
    pieces, rest = [], text.strip()
    while len(rest) > limit:
        cut = max(rest.rfind("\n", 0, limit), rest.rfind(" ", 0, limit))
        cut = cut if cut > limit // 2 else limit
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    return [*pieces, rest] if rest else pieces


async def send(out: Outgoing, ctx: SendContext) -> Sent:
    """Send ``out.text`` to the fan ``out.to`` (a Weibo uid) from the account's access_token."""
    settings = out.account_settings
    token = str(settings.get("access_token", "") or "")
    if not token:
        raise PermanentFailure("not_configured", "the Weibo account needs its access_token setting to send")
    if out.attachments:
        # The reply API sends text, articles (links to hosted images) and positions, not files.
        names = ", ".join(f.filename for f in out.attachments)
        raise PermanentFailure("unsupported_attachment", f"Weibo fan service replies carry text only, not {names}")
    pieces = chunks(out.text)
    if not pieces:
        raise PermanentFailure("empty", "the reply has no text to send")
    url = str(settings.get("api_base") or DEFAULT_API_BASE).rstrip("/") + REPLY
    parts = Parts(ctx.redis, CHANNEL, out.outbox_id)
    done = await parts.done()
    ids = []
    for n, piece in enumerate(pieces):
        if f"text{n}" in done:
            ids.append(done[f"text{n}"])
            continue
        form = {"access_token": token, "type": "text", "receiver_id": out.to,
                "data": json.dumps({"text": piece}, ensure_ascii=False),
                "save_sender_box": str(settings.get("save_sender_box", 1))}
        status, raw = await request(ctx.http, "POST", url, "Weibo messages/reply", data=form)
        answer = json_object(status, raw, "Weibo messages/reply")
        if "error_code" in answer:
            raise failure(answer)
        ids.append(str(answer.get("idstr") or answer.get("id") or ""))
        await parts.mark(f"text{n}", ids[-1])
    return Sent(platform_id=",".join(i for i in ids if i))
