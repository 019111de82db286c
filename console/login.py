"""The sign-in and sign-out pages, and the language switch."""

from __future__ import annotations

import secrets
import time

import structlog
from aiohttp import web

from console import auth, i18n, render
from console.session import (
    clear_session,
    client_address,
    csrf_ok,
    is_https,
    read_session,
    write_session,
)

log = structlog.get_logger()
LIMITS = web.AppKey("console_login_limits", auth.LoginLimits)
_MAX_FIELD = 320


def _page(request: web.Request, email: str = "", message: str = "", status: int = 200) -> web.Response:
    target = render.safe_next(request.query.get("next"))
    return render.render(request, "login.html", {"title_key": "login.title", "email": email, "message": message,
                                                 "next": target}, status=status)


async def login_form(request: web.Request) -> web.Response:
    if await auth.current_user(request) is not None:
        raise web.HTTPSeeOther(render.safe_next(request.query.get("next")))
    return _page(request)


async def login(request: web.Request) -> web.Response:
    form = await request.post()
    if not csrf_ok(request, form):
        return render.error(request, 403, "error.csrf")
    email = str(form.get("email", ""))[:_MAX_FIELD].strip().lower()
    password = str(form.get("password", ""))[:1024]
    address, now = client_address(request), time.time()
    limits = request.app[LIMITS]
    if await limits.blocked(email, address, now):
        log.info("console.login_limited", remote_addr=address)
        return _page(request, email, "login.limited", status=429)
    row = await auth.authenticate(request.app[auth.DB], email, password) if email and password else None
    if row is None:
        await limits.failed(email, address, now)
        log.info("console.login_failed", remote_addr=address)
        return _page(request, email, "login.failed", status=401)
    log.info("console.login", agent_id=row.id, tenant_id=row.tenant_id)
    response = web.HTTPSeeOther(render.safe_next(request.query.get("next")))
    # A fresh CSRF token and session id on sign-in: nothing from before carries over.
    write_session(request, response, auth.new_session(row, csrf=secrets.token_urlsafe(24)))
    raise response


async def logout(request: web.Request) -> web.Response:
    if not csrf_ok(request, await request.post()):
        return render.error(request, 403, "error.csrf")
    await auth.revoke(request, read_session(request))
    response = web.HTTPSeeOther("/login")
    clear_session(response)
    raise response


async def switch_language(request: web.Request) -> web.Response:
    """``/lang?to=zh&next=/…``: remember the language in a cookie and go back."""
    lang = request.query.get("to", "")
    response = web.HTTPSeeOther(render.safe_next(request.query.get("next")))
    if lang in i18n.LANGUAGES:
        response.set_cookie(i18n.COOKIE, lang, max_age=365 * 24 * 3600, path="/", samesite="Lax",
                            httponly=True, secure=is_https(request))
    raise response


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/lang", switch_language)
