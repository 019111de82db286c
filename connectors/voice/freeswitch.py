"""FreeSWITCH ``mod_json_cdr``: the CDR it posts at hangup -> ``Call``.

mod_json_cdr posts to ``<url>?uuid=<uuid>`` with HTTP basic auth (its ``cred`` param). With
``encode`` unset the body is the JSON itself (``application/json``); with ``encode=true``
it is ``cdr=<url-encoded JSON>``, with ``encode=base64`` ``cdr=<base64 JSON>``. Variable
values are URL-encoded unless ``encode-values`` is false, so they are decoded here.
"""

from __future__ import annotations

import base64
import binascii
import json
from urllib.parse import parse_qs, unquote

from connectors.contact import FieldError
from connectors.voice.call import Call

# Variables a dialplan commonly leaves the recording in; the first one set wins.
RECORDING_VARS = ("recording_url", "record_file_path", "recording_file", "record_path", "voicemail_file_path")
_BUSY = ("USER_BUSY",)
_FAILED = ("UNALLOCATED_NUMBER", "INVALID_NUMBER_FORMAT", "NETWORK_OUT_OF_ORDER", "DESTINATION_OUT_OF_ORDER",
           "NORMAL_TEMPORARY_FAILURE", "RECOVERY_ON_TIMER_EXPIRE", "INCOMPATIBLE_DESTINATION", "BEARERCAPABILITY_NOTAVAIL")


def document(body: bytes, content_type: str) -> dict:
    """The CDR object from any of mod_json_cdr's three encodings."""
    try:
        text = body.decode("utf-8")
        if content_type.startswith("application/x-www-form"):
            values = parse_qs(text, keep_blank_values=True).get("cdr")
            if not values:
                raise FieldError("malformed", "form body without a 'cdr' field")
            text = values[0]
            if "base64" in content_type:
                # mod_json_cdr's base64 buffer may carry NULs past the encoded text.
                text = base64.b64decode(text.replace(" ", "+").split("\x00")[0]).decode("utf-8").rstrip("\x00")
        doc = json.loads(text)
    except (UnicodeDecodeError, ValueError, binascii.Error, RecursionError) as exc:
        if isinstance(exc, FieldError):
            raise
        raise FieldError("malformed", f"CDR is not JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("variables"), dict):
        raise FieldError("malformed", "CDR has no 'variables' object")
    return doc


def _vars(doc: dict) -> dict[str, str]:
    return {k: unquote(v) if isinstance(v, str) else str(v) for k, v in doc["variables"].items()}


def _profile(doc: dict) -> dict:
    """The first caller profile of the callflow (older CDRs: a list, newer: one object)."""
    flow = doc.get("callflow")
    flow = flow[0] if isinstance(flow, list) and flow else flow
    profile = flow.get("caller_profile") if isinstance(flow, dict) else None
    return profile if isinstance(profile, dict) else {}


def _number(value: str, limit: int) -> int | None:
    return int(value) if value.isascii() and value.isdigit() and 0 < int(value) < limit else None


def _epoch_ms(v: dict[str, str], name: str) -> int | None:
    micro = _number(v.get(name.replace("_epoch", "_uepoch"), ""), 10**16)
    whole = _number(v.get(name, ""), 10**10)
    return micro // 1000 if micro else whole * 1000 if whole else None


def _secs(v: dict[str, str], name: str) -> int | None:
    value = v.get(name, "")
    return 0 if value == "0" else _number(value, 10**7)


def _status(v: dict[str, str], answered: bool) -> str:
    cause = v.get("hangup_cause", "")
    if v.get("voicemail_message_len", "0") not in ("", "0"):
        return "voicemail"
    if v.get("cc_queue") and v.get("cc_cause", "").lower() == "cancel":
        return "abandoned"  # mod_callcenter: the caller left the queue before an agent answered
    if answered:
        return "completed"
    if cause in _BUSY:
        return "busy"
    return "failed" if cause in _FAILED else "missed"


def call(doc: dict) -> Call:
    """One CDR -> ``Call``; a bridged B leg carries its A leg's ``call_uuid`` and joins that call."""
    v, profile = _vars(doc), _profile(doc)
    call_id = v.get("call_uuid") or v.get("uuid") or str(profile.get("uuid", ""))
    if not call_id:
        raise FieldError("missing_field", "CDR variables have no 'uuid'")
    caller = v.get("caller_id_number") or str(profile.get("caller_id_number", ""))
    dialled = v.get("destination_number") or str(profile.get("destination_number", ""))
    outbound = v.get("direction") == "outbound"
    answered_at = _epoch_ms(v, "answer_epoch")
    talk = _secs(v, "billsec")
    recording = next((v[n] for n in RECORDING_VARS if v.get(n)), "")
    return Call(
        id=call_id[:128], source="freeswitch", status=_status(v, bool(answered_at) or bool(talk)),
        direction="outbound" if outbound else "inbound",
        caller=(dialled if outbound else caller)[:64], callee=(caller if outbound else dialled)[:64],
        caller_name=v.get("caller_id_name", "")[:200], agent=v.get("cc_agent", "")[:200],
        queue=v.get("cc_queue", "")[:200], hangup_cause=v.get("hangup_cause", "")[:64],
        started_at=_epoch_ms(v, "start_epoch"), answered_at=answered_at, ended_at=_epoch_ms(v, "end_epoch"),
        duration=_secs(v, "duration"), talk_time=talk, recording=recording[:2000],
    )
