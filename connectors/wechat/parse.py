"""``parse``: one WeChat push (plaintext XML, already verified and decrypted) -> ``Inbound``."""

from __future__ import annotations

from connectors.inbound import Inbound, Sender
from connectors.wechat.message import EVENTS, MEDIA_FIELDS, OPENING_EVENTS, describe
from connectors.wechat.xml import fields
from core.envelope import Envelope
from core.errors import PermanentError

# Kept in the message's headers when present, in this order.
_INFO_FIELDS = (*MEDIA_FIELDS, "Event", "EventKey", "Ticket")


def parse(env: Envelope) -> list[Inbound]:
    try:
        msg = fields(env.payload)
        openid, kind, created = msg["FromUserName"], msg["MsgType"], int(msg["CreateTime"])
    except (ValueError, KeyError) as exc:
        raise PermanentError(f"not a WeChat push: {exc}") from None
    auto = ""
    if kind == "event":
        event = msg.get("Event", "").lower()
        if event not in EVENTS:
            return []  # TEMPLATESENDJOBFINISH, LOCATION reports and the like
        # Events carry no MsgId; WeChat's own guidance is FromUserName + CreateTime.
        dedup = f"event:{openid}:{created}:{event}"
        auto = "" if event in OPENING_EVENTS else f"wechat_{event}"
    elif msg.get("MsgId"):
        dedup = f"msg:{msg['MsgId']}"
    else:
        raise PermanentError(f"WeChat {kind or 'message'} push without a MsgId")
    text = describe(msg)
    info = {"msg_type": kind, "to": msg.get("ToUserName", "")}
    for name in _INFO_FIELDS:
        if value := msg.get(name):
            info[name] = value
    # unionid links one person's openids across a company's accounts (when WeChat sends it).
    also = [Sender("wechat_union", msg["UnionId"])] if msg.get("UnionId") else []
    return [Inbound(
        dedup_key=f"wechat:{env.account}:{dedup}",
        sender=Sender("wechat", openid, scope=env.account),
        subject=text.splitlines()[0][:80] if text else f"[{kind}]",
        text=text,
        sent_at=created * 1000,
        session_key=f"wechat:{openid}",
        auto_reason=auto,
        headers={"wechat": info},
        also=also,
    )]
