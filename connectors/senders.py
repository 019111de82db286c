"""Channel -> its ``send`` (core.outbound contract): what the sender role calls for a reply.

A channel without an entry here cannot send: its replies fail with ``no_sender``.
"""

from __future__ import annotations

from connectors.email import send as email
from connectors.sdk import send as sdk
from connectors.wechat import send as wechat
from connectors.weibo import send as weibo
from core.outbound import Send

SENDERS: dict[str, Send] = {
    "email": email.send,
    "sdk": sdk.send,
    "wechat": wechat.send,
    "weibo": weibo.send,
}
# Channels replies are sent on (web forms answer by email, phone tickets by a callback task).
OUTBOUND_CHANNELS = ("email", "sdk", "wechat", "weibo")


def channels() -> list[str]:
    """The outbound streams a sender reads: every outbound channel, with or without its ``send``."""
    return sorted(set(OUTBOUND_CHANNELS) | set(SENDERS))
