"""The channels this build knows: name -> ``parse(envelope) -> list[Inbound]``."""

from collections.abc import Callable

from connectors import email, forms, sdk, sms, voice, wechat, weibo
from connectors.inbound import Inbound
from core.envelope import Envelope

Parser = Callable[[Envelope], list[Inbound]]

PARSERS: dict[str, Parser] = {
    "email": email.parse,
    "wechat": wechat.parse,
    "weibo": weibo.parse,
    "webform": forms.parse,
    "sdk": sdk.parse,
    "voice": voice.parse,
    "sms": sms.parse,
}
