"""``parse``: an SMS envelope (one Twilio webhook, or one Aliyun batch) -> ``Inbound``s.

Each message has its own dedup key (Twilio MessageSid, Aliyun sequence_id, within the
account), so a resent webhook or batch adds nothing. A number the account's region can read
becomes the customer's ``phone`` identity in E.164, the same one a call or a web form gives.
"""

from __future__ import annotations

from connectors.contact import FieldError
from connectors.inbound import Inbound, Sender
from connectors.sms import aliyun, twilio
from connectors.sms.message import Sms, dedup_key, describe, number, session_key, subject
from core.envelope import Envelope
from core.errors import PermanentError


def messages(env: Envelope) -> list[Sms]:
    provider = env.meta.get("provider", "")
    if provider == "twilio":
        params = dict(twilio.form(env.payload))
        return [] if twilio.is_status_callback(params) else [twilio.message(params)]
    if provider == "aliyun":
        return aliyun.read(env.payload, max_batch=None)
    raise FieldError("malformed", f"unknown SMS provider {provider!r}")


def inbound(env: Envelope, sms: Sms, region: str) -> Inbound:
    phone = number(sms.sender, region)
    if phone:
        sender = Sender("phone", phone)
    else:  # a short code or sender ID: known by its address within this account only
        sender = Sender("sms", sms.sender.lower(), scope=env.account)
    doc = sms.to_doc()
    doc["from"] = phone or sms.sender
    return Inbound(
        dedup_key=dedup_key(env.account, sms), sender=sender, subject=subject(sms), text=describe(sms),
        sent_at=sms.sent_at, session_key=session_key(sender.value), headers={"sms": doc},
    )


def parse(env: Envelope) -> list[Inbound]:
    region = env.meta.get("region", "CN")
    try:
        return [inbound(env, sms, region) for sms in messages(env)]
    except (FieldError, KeyError, ValueError) as exc:
        raise PermanentError(f"not an SMS this account accepts: {exc}") from None
