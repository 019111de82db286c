"""GET handlers: the status page, a public attachment, the stylesheet, and the one 'not found' page."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy.engine import Row

from core.ids import now_ms
from portal import i18n
from portal.access import CSRF_COOKIE, Portal, csrf_token, new_submission, open_ticket
from ticket_service.api.tickets import content_disposition, safe_content_type
from ticket_service.store import portal as store
from ticket_service.store.tickets import CLOSED

PORTAL = web.AppKey("portal", Portal)
JINJA = web.AppKey("portal_jinja", aiohttp_jinja2.jinja2.Environment)
STYLESHEET = Path(__file__).resolve().parent / "static" / "portal.css"
STYLESHEET_URL = "/portal/static/portal.css"

# No inline script or style anywhere: the stylesheet is our own file, the page runs no script.
CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; "
       "frame-ancestors 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "no-referrer",  # the link is the credential: never sent on to another site
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Robots-Tag": "noindex, nofollow",
}


def language(request: web.Request, asked: str | None = None) -> str:
    return i18n.choose(asked or request.query.get("lang"), request.headers.get("Accept-Language", ""))


def render(request: web.Request, template: str, lang: str, status: int = 200, **context) -> web.Response:
    words = i18n.TEXT[lang]
    response = aiohttp_jinja2.render_template(
        template, request, {"t": words, "lang": lang, "other_lang": i18n.other(lang),
                            "stylesheet": STYLESHEET_URL, **context}, status=status, app_key=JINJA)
    response.headers.update(HEADERS)
    response.headers["Vary"] = "Accept-Language"
    return response


def gone(request: web.Request, lang: str | None = None) -> web.Response:
    """One answer for every link that opens nothing: it never says why, and shows no ticket."""
    return render(request, "gone.html", lang or language(request), status=404)


def timezone(settings: dict | None) -> ZoneInfo:
    name = (settings or {}).get("timezone")
    try:
        return ZoneInfo(name) if isinstance(name, str) and name else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_time(ms: int, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


def accepts_messages(portal: Portal, ticket: Row) -> bool:
    """Open, or closed within the reopen window (a message then reopens it, as any other does)."""
    if ticket.status not in CLOSED:
        return True
    return now_ms() - (ticket.closed_at or 0) <= portal.settings.reopen_window_s * 1000


async def page(request: web.Request) -> web.Response:
    """GET /portal/{token}: the ticket's number, subject, status and public conversation."""
    portal, token = request.app[PORTAL], request.match_info["token"]
    lang = language(request)
    ticket = await open_ticket(portal, token)
    if ticket is None:
        return gone(request, lang)
    async with portal.db.read() as conn:
        conversation = await store.conversation(conn, ticket.tenant_id, ticket.id)
    zone = timezone(ticket.tenant_settings)
    words = i18n.TEXT[lang]
    base = f"/portal/{token}"
    shown = [{
        "from_customer": m.from_customer,
        "author": words["you"] if m.from_customer else (m.author or words["support"]),
        "text": m.text, "when": local_time(m.created_at, zone),
        "files": [{"url": f"{base}/attachments/{f.id}", "name": f.filename, "size": i18n.size_text(f.size)}
                  for f in m.files],
    } for m in conversation]
    csrf = csrf_token(portal, token, request.cookies.get(CSRF_COOKIE))
    response = render(
        request, "ticket.html", lang, ticket=ticket, status_label=words.get(f"status.{ticket.status}", ticket.status),
        title=words["title"].format(number=ticket.number), messages=shown, base=base, csrf=csrf,
        submission=new_submission(), open=accepts_messages(portal, ticket), sent="sent" in request.query,
        max_size=i18n.size_text(portal.settings.portal_max_attachment),
    )
    # Scoped to this link's path, never sent cross-site; the page reads it back only on POST.
    response.set_cookie(CSRF_COOKIE, csrf, path=base, httponly=True, samesite="Strict",
                        secure=portal.settings.effective_public_url.startswith("https:"))
    return response


async def attachment(request: web.Request) -> web.StreamResponse:
    """GET /portal/{token}/attachments/{id}: a file of a public message of this ticket, as a download."""
    portal, token = request.app[PORTAL], request.match_info["token"]
    raw_id = request.match_info["id"]
    ticket = await open_ticket(portal, token)
    if ticket is None or not raw_id.isascii() or not raw_id.isdigit() or len(raw_id) > 10:
        return gone(request)
    async with portal.db.read() as conn:
        row = await store.public_attachment(conn, ticket.tenant_id, ticket.id, int(raw_id))
    if row is None:
        return gone(request)
    data = await portal.blobs.get(row.blob_key)
    return web.Response(body=data, content_type=safe_content_type(row.content_type), headers={
        "Content-Disposition": content_disposition(row.filename),
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Referrer-Policy": "no-referrer", "Cache-Control": "private, no-store",
    })


async def stylesheet(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STYLESHEET, headers={"Cache-Control": "public, max-age=3600",
                                                 "Content-Type": "text/css; charset=utf-8"})
