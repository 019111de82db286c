"""An SMS provider as the SMS tests see it: Twilio's signed webhooks and Aliyun's SmsUp pushes."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

TOKEN = "abcdef0123456789abcdef0123456789"  # a Twilio Auth Token is 32 hex characters
PUSH_TOKEN = "aliyun-push-3f9c1d7e2b"
NUMBER = "+8613800138000"
SETTINGS = {"auth_token": TOKEN, "token": PUSH_TOKEN, "region": "CN"}
PIC = "https://api.twilio.com/2010-04-01/Accounts/AC0/Messages/MM1/Media/ME1"


def twilio_sms(sid: str, body: str, frm: str = NUMBER, **extra: str) -> dict:
    """The parameters Twilio posts to a number's incoming-message webhook."""
    return {"ToCountry": "CN", "ToState": "", "SmsMessageSid": sid, "NumMedia": "0", "ToCity": "", "FromZip": "",
            "SmsSid": sid, "FromState": "", "SmsStatus": "received", "FromCity": "", "Body": body,
            "FromCountry": "CN", "To": "+8610690000", "ToZip": "", "NumSegments": "1", "MessageSid": sid,
            "AccountSid": "AC" + "0" * 32, "From": frm, "ApiVersion": "2010-04-01", **extra}


def uplink(seq: int | str, content: str, phone: str = "13800138000", **extra) -> dict:
    """One SmsUp item as Aliyun's HTTP batch push sends it."""
    return {"phone_number": phone, "send_time": "2026-11-23 09:30:00", "content": content, "sign_name": "顺丰客服",
            "dest_code": "1234", "sequence_id": seq, **extra}


class Provider:
    """Speaks Twilio's and Aliyun's push protocols to a gateway under test, as each does."""

    def __init__(self, gw) -> None:
        self.gw = gw

    async def twilio(self, params: dict, account: str = "acme-sms", sign: bool = True, token: str = TOKEN,
                     signature: str | None = None, url: str | None = None):
        url = url or self.gw.url(f"/sms/{account}/twilio")
        headers = {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "TwilioProxy/1.1"}
        if sign:
            headers["X-Twilio-Signature"] = signature or RequestValidator(token).compute_signature(url, params)
        async with self.gw.http.post(self.gw.url(f"/sms/{account}/twilio"), data=urlencode(params),
                                     headers=headers) as resp:
            ctype = resp.content_type
            body = await resp.json() if ctype == "application/json" else await resp.text()
            return resp.status, ctype, body

    async def aliyun(self, batch: list | bytes, account: str = "acme-sms", token: str | None = PUSH_TOKEN):
        body = batch if isinstance(batch, bytes) else json.dumps(batch, ensure_ascii=False).encode()
        query = f"?token={token}" if token is not None else ""
        headers = {"Content-Type": "application/json;charset=UTF-8"}
        async with self.gw.http.post(self.gw.url(f"/sms/{account}/aliyun") + query, data=body,
                                     headers=headers) as resp:
            return resp.status, await resp.json()
