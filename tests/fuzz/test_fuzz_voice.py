"""Generated input for the voice parsers: call records, Twilio forms, FreeSWITCH CDRs.

Same property as the other push parsers: Inbound messages or a PermanentError, nothing else.
"""

from __future__ import annotations

import json
from urllib.parse import quote, urlencode

from fuzzing import FUZZ, check_parse, json_values, text
from hypothesis import given
from hypothesis import strategies as st

from connectors import voice
from core.envelope import Envelope


def _env(channel: str, payload: bytes, content_type: str = "application/json", **meta: str) -> Envelope:
    return Envelope(tenant="t", channel=channel, account="1", payload=payload, content_type=content_type, meta=meta)

RECORD_FIELDS = ["id", "status", "direction", "from", "to", "caller_name", "agent", "queue", "disposition",
                 "started_at", "answered_at", "ended_at", "duration", "talk_time", "recording_url", "transcript",
                 "ivr_path"]
_value = st.one_of(json_values, st.sampled_from(["completed", "missed", "+8613800138000", "2026-11-23T09:30:00+08:00",
                                           "https://r.example/1", "9" * 30]), st.integers(-1, 10**20))
_record = st.dictionaries(st.sampled_from(RECORD_FIELDS), _value, max_size=10)

TWILIO_FIELDS = ["CallSid", "CallStatus", "From", "To", "Direction", "CallDuration", "RecordingUrl", "RecordingSid",
                 "TranscriptionText", "TranscriptionStatus", "QueueResult", "QueueSid", "CallerName"]

CDR_VARS = ["uuid", "call_uuid", "direction", "caller_id_number", "caller_id_name", "destination_number",
            "start_epoch", "start_uepoch", "answer_epoch", "end_epoch", "duration", "billsec", "hangup_cause",
            "cc_queue", "cc_cause", "voicemail_message_len", "record_file_path"]
_cdr_value = st.one_of(text, st.sampled_from(["0", "1795420800", "99999999999999999999", "²", "%E7%8E%8B", "%"]),
                       st.integers(-5, 10**12))


@FUZZ
@given(st.one_of(_record, st.fixed_dictionaries({"records": st.lists(_record, max_size=5)}), json_values))
def test_records_parser_never_raises_anything_else(doc):
    check_parse(voice.parse, _env("voice", json.dumps(doc).encode(), source="records", region="CN"))


@FUZZ
@given(st.dictionaries(st.sampled_from(TWILIO_FIELDS), text, max_size=8),
       st.sampled_from(["", "voicemail", "queue", "recording", "transcript"]))
def test_twilio_parser_never_raises_anything_else(params, event):
    body = urlencode(params).encode()
    check_parse(voice.parse, _env("voice", body, "application/x-www-form-urlencoded", source="twilio", event=event))


@FUZZ
@given(st.dictionaries(st.sampled_from(CDR_VARS), _cdr_value, max_size=12), json_values,
       st.sampled_from(["application/json", "application/x-www-form-urlencoded", "application/x-www-form-base64-encoded"]))
def test_freeswitch_parser_never_raises_anything_else(variables, callflow, ctype):
    text = json.dumps({"variables": variables, "callflow": callflow})
    body = text.encode() if ctype == "application/json" else f"cdr={quote(text)}".encode()
    check_parse(voice.parse, _env("voice", body, ctype, source="freeswitch"))


@FUZZ
@given(st.binary(max_size=300), st.sampled_from(["records", "twilio", "freeswitch", ""]))
def test_any_bytes_are_refused_cleanly(payload, source):
    check_parse(voice.parse, _env("voice", payload, "application/x-www-form-urlencoded", source=source))
