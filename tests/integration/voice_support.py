"""A call center as the voice tests see it: a CTI posting signed records, Twilio, FreeSWITCH."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from urllib.parse import quote, urlencode

from twilio.request_validator import RequestValidator

SECRET = "cti-secret-4b1d"
TOKEN = "12345678901234567890123456789012"  # a Twilio Auth Token is 32 hex characters
FS_USER, FS_PASSWORD = "freeswitch", "fs-pass-9"
CALLER = "+8613800138000"


def record(call_id: str, status: str, frm: str = CALLER, **extra) -> dict:
    return {"id": call_id, "status": status, "direction": "inbound", "from": frm, "to": "+862161234567",
            **extra}


def cdr(uuid: str, caller: str = "13800138000", answered: bool = True, **variables: str) -> dict:
    """A mod_json_cdr A-leg CDR as FreeSWITCH 1.10 writes it (values URL-encoded)."""
    start = 1795420800
    answer = start + 8 if answered else 0
    end = start + 68
    values = {
        "direction": "inbound", "uuid": uuid, "call_uuid": uuid, "session_id": "17",
        "sip_from_user": caller, "sip_to_user": "4008001234", "caller_id_name": quote("王芳"),
        "caller_id_number": caller, "destination_number": "4008001234",
        "start_epoch": str(start), "start_uepoch": str(start * 1_000_000 + 123456),
        "answer_epoch": str(answer), "answer_uepoch": str(answer * 1_000_000),
        "end_epoch": str(end), "end_uepoch": str(end * 1_000_000),
        "duration": "68", "billsec": str(end - answer if answered else 0),
        "hangup_cause": "NORMAL_CLEARING" if answered else "NO_ANSWER", "hangup_cause_q850": "16",
        "endpoint_disposition": "ANSWER" if answered else "NO ANSWER",
        "record_file_path": quote("/var/lib/freeswitch/recordings/2026-11-23/" + uuid + ".wav", safe=""),
        "read_codec": "PCMA", "write_codec": "PCMA",
        **variables,
    }
    if not answered:
        del values["record_file_path"]
    return {
        "core-uuid": "2d0b1f9e-6c43-4b1e-8f0e-0a0c1f2b3c4d", "switchname": "fs-pbx-1",
        "channel_data": {"state": "CS_REPORTING", "direction": "inbound", "state_number": "11",
                         "flags": "0=1;1=1;38=1;40=1", "caps": "1=1;2=1;3=1;4=1;5=1;6=1"},
        "callStats": {"audio": {"inbound": {"raw_bytes": 1043200, "media_bytes": 1043200}}},
        "variables": values,
        "app_log": {"applications": [{"app_name": "answer", "app_data": ""},
                                     {"app_name": "record_session", "app_data": "/var/lib/freeswitch/recordings"},
                                     {"app_name": "bridge", "app_data": "user/1001"}]},
        "callflow": [{
            "dialplan": "XML", "profile_index": "1",
            "extension": {"name": "support", "number": "4008001234"},
            "caller_profile": {"username": caller, "dialplan": "XML", "caller_id_name": "王芳",
                               "caller_id_number": caller, "network_addr": "203.0.113.7",
                               "destination_number": "4008001234", "uuid": uuid, "context": "public"},
            "times": {"created_time": str(start * 1_000_000), "answered_time": str(answer * 1_000_000),
                      "hangup_time": str(end * 1_000_000)},
        }],
    }


class Callcenter:
    """Speaks the three voice protocols to a gateway under test, as each real client does."""

    def __init__(self, gw) -> None:
        self.gw = gw

    async def records(self, doc: dict | bytes, account: str = "acme-cc", headers: dict | None = None,
                      secret: str = SECRET, skew: int = 0):
        body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        if headers is None:
            ts = str(int(time.time()) + skew)
            sig = hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
            headers = {"X-SB-Timestamp": ts, "X-SB-Signature": sig, "Content-Type": "application/json"}
        async with self.gw.http.post(self.gw.url(f"/voice/{account}/records"), data=body, headers=headers) as resp:
            return resp.status, await resp.json()

    @staticmethod
    def twilio_call(sid: str, status: str, frm: str = CALLER, **extra: str) -> dict:
        """The parameters Twilio posts to a voice URL or status callback."""
        return {"AccountSid": "AC" + "0" * 32, "ApiVersion": "2010-04-01", "CallSid": sid, "CallStatus": status,
                "Called": "+862161234567", "Caller": frm, "Direction": "inbound", "From": frm,
                "FromCountry": "CN", "To": "+862161234567", "ToCountry": "CN", **extra}

    async def twilio(self, params: dict, account: str = "acme-cc", query: str = "", sign: bool = True,
                     token: str = TOKEN, signature: str | None = None):
        url = self.gw.url(f"/voice/{account}/twilio") + (f"?{query}" if query else "")
        headers = {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "TwilioProxy/1.1"}
        if sign:
            headers["X-Twilio-Signature"] = signature or RequestValidator(token).compute_signature(url, params)
        async with self.gw.http.post(url, data=urlencode(params), headers=headers) as resp:
            ctype = resp.content_type
            body = await resp.json() if ctype == "application/json" else await resp.text()
            return resp.status, ctype, body

    async def freeswitch(self, body: bytes, ctype: str, account: str = "acme-cc", password: str = FS_PASSWORD):
        # mod_json_cdr: POST <url>?uuid=<uuid>, curl basic auth from its ``cred`` param.
        auth = base64.b64encode(f"{FS_USER}:{password}".encode()).decode()
        headers = {"Content-Type": ctype, "Authorization": f"Basic {auth}", "User-Agent": "freeswitch-json/1.0"}
        url = self.gw.url(f"/voice/{account}/freeswitch") + "?uuid=x"
        async with self.gw.http.post(url, data=body, headers=headers) as resp:
            return resp.status, await resp.json()
