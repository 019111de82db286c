"""The console's session cookie: signed (itsdangerous), HttpOnly, SameSite=Lax, Secure on https.

It carries the agent, the tenant, a CSRF token (a visitor without a session gets one too,
for the sign-in form), a fingerprint of the password hash and a session id.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from aiohttp import web
from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE = "sb_console"
CSRF_FIELD = "csrf"


@dataclass(frozen=True, slots=True)
class ConsoleConfig:
    secret_key: str
    trust_proxy: bool = False
    session_s: int = 12 * 3600
    login_limit: int = 5
    login_limit_addr: int = 20
    login_window_s: int = 900


CONFIG = web.AppKey("console_config", ConsoleConfig)
# Typed request keys (aiohttp warns on plain strings): this request's session, and whether
# this request made it (so the response sets the cookie).
SESSION = web.RequestKey("console_session", dict)
NEW_SESSION = web.RequestKey("console_session_new", bool)


def _serializer(request: web.Request) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(request.app[CONFIG].secret_key, salt="switchboard.console.session")


def read_session(request: web.Request) -> dict:
    """The cookie's session, or {} for none, a forged one or an expired one."""
    if SESSION in request:
        return request[SESSION]
    raw = request.cookies.get(COOKIE)
    data = {}
    if raw:
        try:
            data = _serializer(request).loads(raw, max_age=request.app[CONFIG].session_s)
        except BadSignature:
            data = {}
    request[SESSION] = data if isinstance(data, dict) else {}
    return request[SESSION]


def is_https(request: web.Request) -> bool:
    if request.secure:
        return True
    proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return request.app[CONFIG].trust_proxy and proto == "https"


def client_address(request: web.Request) -> str:
    forwarded = request.headers.get("X-Forwarded-For", "")
    if request.app[CONFIG].trust_proxy and forwarded:
        return forwarded.split(",")[-1].strip()  # the hop our own proxy added
    return request.remote or ""


def write_session(request: web.Request, response: web.StreamResponse, data: dict) -> None:
    response.set_cookie(COOKIE, _serializer(request).dumps(data), max_age=request.app[CONFIG].session_s,
                        path="/", httponly=True, samesite="Lax", secure=is_https(request))


def clear_session(response: web.StreamResponse) -> None:
    response.del_cookie(COOKIE, path="/")


def csrf_token(request: web.Request) -> str:
    """This visitor's CSRF token; a visitor without one gets a new one (``keep_new_session``)."""
    session = read_session(request)
    if not session.get("c"):
        request[SESSION] = {**session, "c": secrets.token_urlsafe(24)}
        request[NEW_SESSION] = True
    return request[SESSION]["c"]


def keep_new_session(request: web.Request, response: web.StreamResponse) -> None:
    """Set the cookie when this request made a CSRF token for a visitor without one."""
    if request.get(NEW_SESSION):
        write_session(request, response, request[SESSION])


def csrf_ok(request: web.Request, form) -> bool:
    expected = str(read_session(request).get("c", ""))
    given = form.get(CSRF_FIELD, "") if form is not None else ""
    given = given if isinstance(given, str) else ""
    return bool(expected) and hmac.compare_digest(expected.encode(), given.encode())
