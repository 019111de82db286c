"""Request signing of the SDK protocol (docs/sdk.md).

``X-SB-Timestamp``: Unix seconds; ``X-SB-Signature``: hex HMAC-SHA256 with the app secret
over ``timestamp + "." + content``, where content is the raw body of a POST and the path
with its query string of a GET. A timestamp outside the window is refused (replay).
"""

from __future__ import annotations

import hashlib
import hmac

from aiohttp import web

from connectors.push import Reject, clock_s
from core.accounts import Account

TIMESTAMP, SIGNATURE = "X-SB-Timestamp", "X-SB-Signature"
DEFAULT_SKEW_S = 300


def sign(secret: str, timestamp: str, content: bytes) -> str:
    return hmac.new(secret.encode(), timestamp.encode() + b"." + content, hashlib.sha256).hexdigest()


def verify(request: web.Request, account: Account, content: bytes) -> None:
    secret = str(account.settings.get("secret", ""))
    timestamp, signature = request.headers.get(TIMESTAMP, ""), request.headers.get(SIGNATURE, "")
    if not timestamp or not signature:
        raise Reject(401, "missing_signature", f"{TIMESTAMP} and {SIGNATURE} headers are required")
    if not timestamp.isascii() or not timestamp.isdigit():
        raise Reject(401, "bad_timestamp", f"{TIMESTAMP} is not Unix seconds")
    skew = abs(clock_s() - int(timestamp))
    window = int(account.settings.get("clock_skew_s", DEFAULT_SKEW_S))
    if skew > window:
        raise Reject(401, "stale_timestamp", f"timestamp is {skew} s off the server clock (limit {window} s)")
    if not secret or not hmac.compare_digest(sign(secret, timestamp, content), signature.lower()):
        raise Reject(401, "bad_signature", "signature does not match the app secret")
