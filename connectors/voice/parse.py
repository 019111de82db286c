"""``parse``: a voice envelope (call records, a Twilio webhook, a FreeSWITCH CDR) -> ``Inbound``s.

Every event of one call has the same dedup key (the call id), so the normalizer updates the
call's one message instead of adding another.
"""

from __future__ import annotations

from connectors.contact import FieldError, e164
from connectors.inbound import Inbound, Sender
from connectors.voice import freeswitch, records, twilio
from connectors.voice.call import CALLBACK_TAG, Call, needs_callback, subject, summary
from core.envelope import Envelope
from core.errors import PermanentError

CHANNEL = "voice"


def dedup_key(account: str, call_id: str) -> str:
    return f"voice:{account}:{call_id}"


def session_key(number: str) -> str:
    """Thread key of a caller: joins the ticket the number last called about, within the window."""
    return f"voice:caller:{number}"


def calls(env: Envelope) -> list[Call]:
    source = env.meta.get("source", "")
    if source == "records":
        return records.read(env.payload)
    if source == "twilio":
        params = dict(twilio.form(env.payload))
        if not params.get("CallSid"):
            raise FieldError("missing_field", "no CallSid")
        return [twilio.call(params, env.meta.get("event", ""))]
    if source == "freeswitch":
        return [freeswitch.call(freeswitch.document(env.payload, env.content_type))]
    raise FieldError("malformed", f"unknown voice source {source!r}")


def number(raw: str, region: str) -> str:
    """The customer's number in E.164, or "" for a withheld or unusable one."""
    try:
        return e164(raw, region, "from") if raw and any(c.isdigit() for c in raw) else ""
    except FieldError:
        return ""


def inbound(env: Envelope, call: Call, region: str) -> Inbound:
    doc = call.to_doc()
    doc["caller"] = number(call.caller, region) or call.caller
    doc["callee"] = number(call.callee, region) or call.callee
    caller = number(call.caller, region)
    if caller:
        sender, session = Sender("phone", caller, call.caller_name), session_key(caller)
    else:  # a withheld number is a customer of its own, never threaded with anyone
        sender, session = Sender("voice", f"{env.account}:{call.id}", call.caller_name), ""
    return Inbound(
        # An event that does not name the caller (Twilio's recording callback) is kept with
        # the call but opens nothing; the call's first event naming the caller places it.
        auto_reason="" if call.caller else "call-event-without-caller",
        dedup_key=dedup_key(env.account, call.id), sender=sender, subject=subject(doc), text=summary(doc),
        sent_at=call.started_at, session_key=session, headers={"call": doc},
        tags=[CALLBACK_TAG] if needs_callback(doc) else [],
    )


def parse(env: Envelope) -> list[Inbound]:
    region = env.meta.get("region", "CN")
    try:
        return [inbound(env, c, region) for c in calls(env)]
    except (FieldError, KeyError, ValueError) as exc:
        raise PermanentError(f"not a call record this account accepts: {exc}") from None
