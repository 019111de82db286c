"""Rendering a console page: the common context, security headers, error pages."""

from __future__ import annotations

from urllib.parse import urlencode

import aiohttp_jinja2
from aiohttp import web

from console import i18n
from console.session import csrf_token, keep_new_session

JINJA = web.AppKey("console_jinja", object)  # its own key: other apps' templates keep theirs
USER = web.RequestKey("console_user", object)  # the signed-in user (console.auth.User)
# Our own files only: no inline script or style, no other origin (message HTML cannot load
# a tracking pixel either), no framing.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


def secure(response: web.StreamResponse) -> web.StreamResponse:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    return response


def render(request: web.Request, template: str, context: dict, status: int = 200) -> web.Response:
    lang = i18n.language(request)
    user = request.get(USER)
    tz = user.timezone if user else "UTC"
    common = {
        "lang": lang, "user": user, "csrf": csrf_token(request), "here": request.path_qs,
        "t": lambda key: i18n.t(lang, key), "when": lambda ms: i18n.local_time(ms, tz), "tz": tz,
        "label": lambda prefix, value: i18n.label(lang, prefix, value),
        "duration": lambda seconds: i18n.duration(lang, seconds),
    }
    response = aiohttp_jinja2.render_template(template, request, common | context, status=status,
                                              app_key=JINJA)
    keep_new_session(request, response)
    return secure(response)


def error(request: web.Request, status: int, key: str) -> web.Response:
    return render(request, "error.html", {"title_key": "error.title", "message_key": key}, status=status)


def safe_next(target: str | None) -> str:
    """A path on this site to go on to; anything else (another host, a scheme) is the inbox."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    return target


def login_url(target: str) -> str:
    return "/login?" + urlencode({"next": safe_next(target)})
