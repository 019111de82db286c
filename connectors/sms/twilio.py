"""Twilio Messaging webhooks: the incoming-message parameters -> ``Sms``, status callbacks, TwiML.

Twilio posts ``application/x-www-form-urlencoded`` (Twilio "Twilio's request to your incoming
message Webhook URL"): MessageSid, AccountSid, From, To, Body, NumMedia and, per media item,
MediaUrl{N} and MediaContentType{N}. The signature is the voice webhooks' own
(``connectors.voice.twilio``): base64 HMAC-SHA1 over the URL Twilio requested plus the sorted
POST parameters, keyed with the account's Auth Token.
"""

from __future__ import annotations

import re

from aiohttp import web

from connectors.contact import FieldError
from connectors.sms.message import MAX_TEXT, Sms
from connectors.voice.twilio import SIGNATURE, SIGNATURE_SETTINGS, form, valid

__all__ = ["EMPTY_TWIML", "SIGNATURE", "check", "form", "is_status_callback", "message", "public_url", "verified"]

# "To receive an incoming message and not send a reply, respond with <Response></Response>."
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
# Twilio media: "up to 10 media files" per message.
MAX_MEDIA = 10
# Statuses an incoming message is reported with; any other belongs to an outbound message's
# status callback (queued, sent, delivered, undelivered, failed, read …).
_INCOMING = ("", "received", "receiving")
_SID = re.compile(r"^[A-Za-z0-9]{2,64}$")  # SM… / MM… + 32 hex digits
# Details worth keeping with the message; the rest of Twilio's parameters are in the raw payload.
_KEPT = ("AccountSid", "MessagingServiceSid", "NumSegments", "FromCountry", "FromState", "FromCity", "ToCountry")


def public_url(request: web.Request, settings: dict) -> str:
    """The URL as Twilio requested it: behind a proxy, ``public_url`` + our path and query."""
    base = str(settings.get("public_url", "")).rstrip("/")
    return base + request.path_qs if base else str(request.url)


def verified(request: web.Request, settings: dict, params: list[tuple[str, str]]) -> str:
    """"" when ``X-Twilio-Signature`` holds for this URL and these parameters, else the reason."""
    sent = request.headers.get(SIGNATURE, "")
    if not sent:
        return "missing_signature"
    if not valid(settings, public_url(request, settings), params, sent, request.headers.get(SIGNATURE_SETTINGS, "")):
        return "bad_signature"
    return ""


def is_status_callback(params: dict[str, str]) -> bool:
    """An outbound message's status callback: a MessageStatus past "received" and no Body."""
    status = params.get("MessageStatus") or params.get("SmsStatus") or ""
    return "Body" not in params and status not in _INCOMING


def _media_count(params: dict[str, str]) -> int:
    raw = params.get("NumMedia", "0") or "0"
    if not raw.isascii() or not raw.isdigit() or int(raw) > MAX_MEDIA:
        raise FieldError("invalid_field", f"'NumMedia' must be a number from 0 to {MAX_MEDIA}")
    return int(raw)


def check(params: dict[str, str]) -> None:
    """The fields an incoming message needs; a FieldError names the first one missing or wrong."""
    sid = params.get("MessageSid") or params.get("SmsMessageSid") or ""
    if not sid:
        raise FieldError("missing_field", "'MessageSid' is required")
    if not _SID.match(sid):
        raise FieldError("invalid_field", "'MessageSid' must be 2-64 letters and digits")
    if not params.get("From", "").strip():
        raise FieldError("missing_field", "'From' is required")
    if "Body" not in params:
        raise FieldError("missing_field", "'Body' is required (empty for an MMS without text)")
    _media_count(params)


def message(params: dict[str, str]) -> Sms:
    """One checked incoming-message webhook -> ``Sms``; media links are kept, never fetched."""
    check(params)
    media = []
    for n in range(_media_count(params)):
        url = params.get(f"MediaUrl{n}", "")
        # Agents open these links: only web addresses, never javascript: or file: ones.
        if url.startswith(("https://", "http://")) and len(url) <= 2000:
            media.append({"url": url, "content_type": params.get(f"MediaContentType{n}", "")[:255]})
    return Sms(
        id=params.get("MessageSid") or params["SmsMessageSid"], provider="twilio",
        sender=params["From"].strip()[:64], to=params.get("To", "")[:64], text=params["Body"][:MAX_TEXT],
        media=media, extra={k: params[k][:200] for k in _KEPT if params.get(k)},
    )
