"""Twilio voice webhooks: ``X-Twilio-Signature``, the form parameters -> ``Call``, TwiML answers.

Signature (Twilio "Webhooks security"): base64 HMAC-SHA1, keyed with the account's Auth
Token, over the full URL Twilio requested followed by every POST parameter name and value,
sorted by name. Twilio is inconsistent about the default port, so the URL is tried with and
without it. A ``X-Twilio-Webhooks-Signature-Settings`` header naming ``HMAC_SHA256`` means a
SharedKey signature: keyed with the account's ``shared_key`` setting instead.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import parse_qsl, urlsplit, urlunsplit
from xml.sax.saxutils import escape, quoteattr

from connectors.voice.call import Call

SIGNATURE = "X-Twilio-Signature"
SIGNATURE_SETTINGS = "X-Twilio-Webhooks-Signature-Settings"

# Twilio CallStatus -> ours (Twilio "Call resource: status values").
_STATUS = {
    "queued": "queued", "initiated": "ringing", "ringing": "ringing", "in-progress": "answered",
    "completed": "completed", "busy": "busy", "failed": "failed", "no-answer": "missed", "canceled": "missed",
}
# <Enqueue action>: QueueResult values where the caller left the queue unanswered.
_ABANDONED = ("hangup", "queue-full", "error", "system-error", "leave")
ANSWER_MODES = ("voicemail", "enqueue", "play")


def form(body: bytes) -> list[tuple[str, str]]:
    """An application/x-www-form-urlencoded body as Twilio sends it (UTF-8)."""
    return parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)


def signature(key: str, url: str, params: list[tuple[str, str]], sha256: bool = False) -> str:
    names = sorted({name for name, _ in params})
    data = url + "".join(name + value for name in names for value in sorted({v for n, v in params if n == name}))
    digest = hmac.new(key.encode(), data.encode(), hashlib.sha256 if sha256 else hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _ports(url: str) -> list[str]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    default = 443 if parts.scheme == "https" else 80
    bare = urlunsplit(parts._replace(netloc=host))
    with_port = urlunsplit(parts._replace(netloc=f"{host}:{parts.port or default}"))
    return list(dict.fromkeys([url, bare, with_port]))


def valid(settings: dict, url: str, params: list[tuple[str, str]], sent: str, sig_settings: str) -> bool:
    algorithm = next((v.strip().upper() for n, _, v in (p.partition("=") for p in sig_settings.split(","))
                      if n.strip() == "algorithm"), "HMAC_SHA1")
    if algorithm not in ("HMAC_SHA1", "HMAC_SHA256"):
        return False
    sha256 = algorithm == "HMAC_SHA256"
    key = str(settings.get("shared_key" if sha256 else "auth_token", ""))
    if not key or not sent:
        return False
    return any(hmac.compare_digest(signature(key, u, params, sha256), sent) for u in _ports(url))


def _int(value: str) -> int | None:
    return int(value) if value.isascii() and value.isdigit() and len(value) < 8 else None


def call(params: dict[str, str], event: str) -> Call:
    """One webhook (voice URL, status callback, recording, transcription, queue action) -> ``Call``."""
    status = _STATUS.get(params.get("CallStatus", ""), "")
    if event == "voicemail" and params.get("RecordingUrl"):
        status = "voicemail"
    if event == "queue" and params.get("QueueResult") in _ABANDONED:
        status = "abandoned"
    outbound = params.get("Direction", "inbound").startswith("outbound")
    customer, ours = ("To", "From") if outbound else ("From", "To")
    recording = params.get("RecordingUrl", "")
    return Call(
        id=params["CallSid"], source="twilio", status=status, direction="outbound" if outbound else "inbound",
        caller=params.get(customer, ""), callee=params.get(ours, ""),
        caller_name=params.get("CallerName", "")[:200],
        queue=params.get("QueueSid", "") if event == "queue" else "",
        disposition=params.get("QueueResult", "") if event == "queue" else "",
        duration=_int(params.get("CallDuration", "")),
        recording=recording, recording_id=params.get("RecordingSid", "") if recording else "",
        transcript=params.get("TranscriptionText", "") if params.get("TranscriptionStatus", "completed") == "completed"
        else "",
    )


def _xml(body: str) -> str:
    return f'<?xml version="1.0" encoding="UTF-8"?><Response>{body}</Response>'


def answer(settings: dict, url: str) -> str:
    """TwiML for the incoming-call webhook: voicemail (default), enqueue or play (account settings)."""
    mode = settings.get("answer", "voicemail")
    greeting = settings.get("greeting", "")
    say = f"<Say>{escape(greeting)}</Say>" if greeting else ""
    if mode == "play" and settings.get("play_url"):
        return _xml(f"{say}<Play>{escape(str(settings['play_url']))}</Play>")
    if mode == "enqueue":
        queue = escape(str(settings.get("queue", "support")))
        return _xml(f"{say}<Enqueue action={quoteattr(url + '?event=queue')}>{queue}</Enqueue>")
    say = say or "<Say>Please leave a message after the tone.</Say>"
    return _xml(
        f"{say}<Record action={quoteattr(url + '?event=voicemail')} maxLength=\"120\" playBeep=\"true\""
        f" transcribe=\"true\" transcribeCallback={quoteattr(url + '?event=transcript')}"
        f" recordingStatusCallback={quoteattr(url + '?event=recording')}/>"
    )


def reply(settings: dict, url: str, params: dict[str, str], event: str) -> str:
    """The answer to a webhook: the greeting to a new incoming call, else an empty Response."""
    if event == "voicemail":
        return _xml("<Hangup/>")
    if not event and params.get("CallStatus") in ("ringing", "queued") and not params.get(
            "Direction", "inbound").startswith("outbound"):
        return answer(settings, url)
    return _xml("")
