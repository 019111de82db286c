"""The ticket page (``/tickets/{number}``): one timeline across channels, the customer, why the
ticket was threaded and routed as it was, and the forms that act on it (``actions``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import nh3
from aiohttp import web
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.engine import Connection, Row
from sqlalchemy.ext.asyncio import AsyncConnection

from console import actions, auth, i18n, render, sla
from console.inbox import ticket_select
from core.blobs import BlobStore
from core.bus import Bus
from core.ids import now_ms
from ticket_service.api.errors import ApiError
from ticket_service.api.routing import TICKET_STATUSES, routing_trail
from ticket_service.api.tickets import (
    content_disposition,
    message_rows,
    safe_content_type,
    threading_json,
)
from ticket_service.field_schema import Field
from ticket_service.store import fields as fields_store
from ticket_service.store import sla as sla_store
from ticket_service.store import users
from ticket_service.store.replies import IDENTITY
from ticket_service.store.tables import attachments, identities, messages, tickets

BLOBS = web.AppKey("console_blobs", BlobStore)
# Shown HTML: nh3's allow-list (no script, style, form, event handler or javascript: URL),
# links marked as leaving the site; the page's CSP blocks any remote image as well.
_URL_SCHEMES = {"http", "https", "mailto", "cid"}
NOTICES = ("ticket.saved", "ticket.sent", "ticket.noted", "ticket.empty_text", "ticket.bad_value")


def safe_html(html: str) -> Markup:
    """Message HTML as shown: sanitized again at display, whatever was stored."""
    return Markup(nh3.clean(html, clean_content_tags={"script", "style"}, url_schemes=_URL_SCHEMES,
                            link_rel="noopener noreferrer nofollow"))


@dataclass
class Entry:
    """One message of the timeline with what the page shows beside it."""

    row: Row
    files: list[Row]
    delivery: Row | None
    threading: dict | None
    body_html: Markup | None
    recording: str = ""
    links: dict = field(default_factory=dict)


def _recordings(conn: Connection, tenant_id: int, ids: list[int]) -> dict[int, str]:
    """The call recording URL of each phone message (``headers.call.recording``), http(s) only."""
    if not ids:
        return {}
    out = {}
    for row in conn.execute(select(messages.c.id, messages.c.headers).where(
            messages.c.tenant_id == tenant_id, messages.c.id.in_(ids))):
        url = ((row.headers or {}).get("call") or {}).get("recording") or ""
        if isinstance(url, str) and url.startswith(("https://", "http://")):
            out[row.id] = url
    return out


async def load(conn: AsyncConnection, user: auth.User, number: int) -> dict | None:
    """Everything the ticket page shows, or None when the tenant has no such ticket."""
    ticket = (await conn.execute(ticket_select(user.tenant_id).where(tickets.c.number == number))).first()
    if ticket is None:
        return None
    msgs, files, sent = await message_rows(conn, user.tenant_id, messages.c.ticket_id == ticket.id)
    calls = await conn.run_sync(_recordings, user.tenant_id, [m.id for m in msgs if m.channel == "voice"])
    timeline = [Entry(m, files[m.id], sent.get(m.id), threading_json(m), safe_html(m.html) if m.html else None,
                      calls.get(m.id, "")) for m in msgs]
    ids = (await conn.execute(select(identities.c.kind, identities.c.scope, identities.c.value).where(
        identities.c.tenant_id == user.tenant_id, identities.c.customer_id == ticket.customer_id)
        .order_by(identities.c.id))).all()
    kinds = {i.kind for i in ids}
    values = (await conn.execute(select(tickets.c.fields).where(tickets.c.id == ticket.id))).scalar()
    return {
        "ticket": ticket, "timeline": timeline, "identities": ids,
        "routing": await conn.run_sync(routing_trail, user.tenant_id, ticket.id),
        "agents": await conn.run_sync(users.tenant_agents, user.tenant_id),
        "reply_channels": [c for c, (kind, _) in IDENTITY.items() if kind in kinds],
        "sla": sla.panel(await conn.run_sync(sla_store.ticket_clocks, user.tenant_id, ticket.id), now_ms()),
        "defs": list((await conn.run_sync(fields_store.definitions, user.tenant_id)).values()),
        "values": dict(values or {}),
    }


def refusal(lang: str, error: ApiError, defs: list[Field]) -> str:
    """The API's refusal in the page's language when the console knows it (a required field,
    named by its label), else its message as the API gave it."""
    name = error.message.partition(":")[0].removeprefix("fields.")
    labels = {d.name: d.label or d.name for d in defs}
    if error.code == "required_field" and name in labels:
        return i18n.t(lang, "ticket.field_required").format(field=labels[name])
    return f"{i18n.t(lang, 'ticket.refused')} {error.message}"


@auth.signed_in()
async def page(request: web.Request) -> web.Response:
    user: auth.User = request[auth.USER]
    number = actions.number_of(request)
    view = None
    if number:
        async with request.app[auth.DB].read() as conn:
            view = await load(conn, user, number)
    if view is None:
        return render.error(request, 404, "error.not_found")
    notice = request.query.get("done")
    return _render(request, view, notice if notice in NOTICES else None)


def _render(request: web.Request, view: dict, notice: str | None, error: str = "", status: int = 200,
            entered: dict | None = None) -> web.Response:
    return render.render(request, "ticket.html", {
        **view, "title_key": "ticket.title", "page": "ticket", "statuses": TICKET_STATUSES,
        "notice": notice, "error": error, "values": {**view["values"], **(entered or {})},
    }, status=status)


async def refused(request: web.Request, number: int, error: ApiError) -> web.Response:
    """The ticket page again, answered 400, with the API's refusal and the values as typed."""
    user: auth.User = request[auth.USER]
    async with request.app[auth.DB].read() as conn:
        view = await load(conn, user, number)
    if view is None:
        return render.error(request, 404, "error.not_found")
    form = await request.post()
    entered = {d.name: form.getall(actions.FIELD_INPUT + d.name) if d.type == "multi_choice"
               else form.get(actions.FIELD_INPUT + d.name) for d in view["defs"]
               if actions.FIELD_INPUT + d.name in form}
    return _render(request, view, None, refusal(i18n.language(request), error, view["defs"]), 400, entered)


@auth.signed_in()
async def attachment(request: web.Request) -> web.Response:
    """An attachment of the tenant's, always as a download, never rendered in our origin."""
    user: auth.User = request[auth.USER]
    raw = request.match_info["id"]
    row = None
    if raw.isdigit() and len(raw) < 12:
        async with request.app[auth.DB].read() as conn:
            row = (await conn.execute(
                select(attachments.c.filename, attachments.c.content_type, attachments.c.blob_key)
                .where(attachments.c.tenant_id == user.tenant_id, attachments.c.id == int(raw)))).first()
    if row is None:
        return render.error(request, 404, "error.not_found")
    data = await request.app[BLOBS].get(row.blob_key)
    return web.Response(body=data, content_type=safe_content_type(row.content_type), headers={
        "Content-Disposition": content_disposition(row.filename), "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox", "Cache-Control": "private, no-cache"})


def setup_routes(app: web.Application, blobs: BlobStore, bus: Bus | None, classes: Mapping[str, str],
                 secret_key: str) -> None:
    app[BLOBS] = blobs
    app[actions.REFUSED] = refused
    app.router.add_get("/tickets/{number}", page)
    app.router.add_get("/attachments/{id}", attachment)
    actions.setup_routes(app, bus, classes, secret_key)
