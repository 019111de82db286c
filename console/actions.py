"""The ticket page's forms: reply or note, status, priority, tags, assignee, custom fields.

Each is a POST with the session's CSRF token, answered with a redirect back to the ticket
(post/redirect/get) carrying a notice. Replies go through the same store code as
``POST /api/v1/tickets/{id}/messages``; status and assignee through the same as
``PATCH /api/v1/tickets/{id}``, announced on ``ticket.events`` as the API does. A change the
API would answer with an error (a bad field value, solving without a required field) shows the
ticket page again with the API's message, answered 400 (``REFUSED``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from console import auth, render
from core.bus import Bus
from core.ids import now_ms
from core.keys import TICKET_EVENTS
from ticket_service import events
from ticket_service.api.errors import ApiError
from ticket_service.api.replies import MAX_TEXT
from ticket_service.api.routing import TICKET_STATUSES, change_events, change_ticket
from ticket_service.field_schema import Field
from ticket_service.store import fields as fields_store
from ticket_service.store import tickets as tickets_store
from ticket_service.store.replies import CHANNELS, Draft, ReplyError, store_reply

BUS = web.AppKey("console_bus", Bus)
CLASSES = web.AppKey("console_classes", Mapping)
SECRET = web.AppKey("console_secret", str)  # signs the reply tokens of outgoing mail
MAX_TAGS, MAX_TAG = 20, 64
PRIORITIES = range(0, 100)
FIELD_INPUT = "f."  # the fields form names each input ``f.NAME``
# The ticket page with a refusal on it (console.ticket sets it; it renders what this module acts on).
REFUSED = web.AppKey("console_refused", Callable[..., Awaitable[web.Response]])


class Refused(Exception):
    """A change the API's checks refused: its ``ApiError`` goes on the ticket page."""

    def __init__(self, error: ApiError) -> None:
        super().__init__(error.message)
        self.error = error


def number_of(request: web.Request) -> int | None:
    raw = request.match_info["number"]
    return int(raw) if raw.isdigit() and len(raw) < 10 else None


async def _ticket_id(request: web.Request, user: auth.User) -> int | None:
    number = number_of(request)
    if number is None:
        return None
    async with request.app[auth.DB].read() as conn:
        return await conn.run_sync(tickets_store.ticket_id_by_number, user.tenant_id, number)


def _back(request: web.Request, notice: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"/tickets/{number_of(request)}?done={notice}")


async def _announce(request: web.Request, kind: str, tenant_id: int, **fields) -> None:
    bus = request.app.get(BUS)
    if bus is not None:
        await bus.publish(TICKET_EVENTS, events.event_envelope(kind, str(tenant_id), "", "", tenant_id=tenant_id,
                                                               **fields))


def _acting(handler):
    """A form on one ticket of the user's tenant: 404 for another tenant's or a missing one."""
    @auth.signed_in(form=True)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        user: auth.User = request[auth.USER]
        ticket_id = await _ticket_id(request, user)
        if ticket_id is None:
            return render.error(request, 404, "error.not_found")
        try:
            return await handler(request, user, ticket_id, await request.post())
        except Refused as refused:
            return await request.app[REFUSED](request, number_of(request), refused.error)
    wrapper.__name__ = handler.__name__
    return wrapper


@_acting
async def post_message(request: web.Request, user: auth.User, ticket_id: int, form) -> web.StreamResponse:
    """A reply on the customer's channel (or the one chosen), or an internal note."""
    kind = form.get("kind", "reply")
    text = str(form.get("text", ""))[:MAX_TEXT]
    channel = str(form.get("channel", ""))
    if kind not in ("reply", "note") or (channel and channel not in CHANNELS):
        raise _back(request, "ticket.bad_value")
    if not text.strip():
        raise _back(request, "ticket.empty_text")
    draft = Draft(kind=kind, text=text, channel=channel, author_id=user.id)
    try:
        await request.app[auth.DB].run_write(store_reply, user.tenant_id, ticket_id, draft,
                                             request.app[SECRET], now_ms())
    except ReplyError:
        raise _back(request, "ticket.bad_value") from None
    raise _back(request, "ticket.noted" if kind == "note" else "ticket.sent")


async def _change(request: web.Request, user: auth.User, ticket_id: int, body: dict, status: str | None) -> None:
    try:
        freed, before, _ = await request.app[auth.DB].run_write(change_ticket, user.tenant_id, ticket_id, body,
                                                                status, now_ms(), request.app[CLASSES])
    except ApiError as exc:
        if exc.status == 400:
            raise Refused(exc) from None
        raise _back(request, "ticket.bad_value") from None
    changes = change_events(ticket_id, body, status, before, freed)
    if not changes:  # a status set to what it was: the console's pages still hear of it
        changes = [(events.TICKET_UPDATED, {"ticket_id": ticket_id, "freed_agent_id": freed})]
    for kind, fields in changes:
        await _announce(request, kind, user.tenant_id, **fields)


@_acting
async def post_status(request: web.Request, user: auth.User, ticket_id: int, form) -> web.StreamResponse:
    status = form.get("status")
    if status not in TICKET_STATUSES:
        raise _back(request, "ticket.bad_value")
    await _change(request, user, ticket_id, {}, status)
    raise _back(request, "ticket.saved")


@_acting
async def post_assignee(request: web.Request, user: auth.User, ticket_id: int, form) -> web.StreamResponse:
    """Supervisors assign anyone or nobody; an agent takes the ticket or lets it go."""
    raw = str(form.get("assignee", ""))
    target = int(raw) if raw.isdigit() and len(raw) < 10 else None
    if raw and target is None:
        raise _back(request, "ticket.bad_value")
    if not user.can("supervisor") and target not in (None, user.id):
        raise _back(request, "ticket.bad_value")
    await _change(request, user, ticket_id, {"assignee": target}, None)
    raise _back(request, "ticket.saved")


@_acting
async def post_priority(request: web.Request, user: auth.User, ticket_id: int, form) -> web.StreamResponse:
    raw = str(form.get("priority", ""))
    if not raw.isdigit() or int(raw) not in PRIORITIES:
        raise _back(request, "ticket.bad_value")
    await request.app[auth.DB].run_write(tickets_store.set_priority, user.tenant_id, ticket_id, int(raw))
    raise _back(request, "ticket.saved")


def parse_tags(raw: str) -> list[str] | None:
    """``a, b`` -> ["a", "b"] (order kept, duplicates dropped); None when over the limits."""
    tags = list(dict.fromkeys(t.strip() for t in raw.replace("，", ",").split(",") if t.strip()))
    if len(tags) > MAX_TAGS or any(len(t) > MAX_TAG for t in tags):
        return None
    return tags


@_acting
async def post_tags(request: web.Request, user: auth.User, ticket_id: int, form) -> web.StreamResponse:
    tags = parse_tags(str(form.get("tags", "")))
    if tags is None:
        raise _back(request, "ticket.bad_value")
    await request.app[auth.DB].run_write(tickets_store.set_tags, ticket_id, tags)
    raise _back(request, "ticket.saved")


def form_values(defs: Mapping[str, Field], form) -> dict[str, Any]:
    """The fields form as the API's JSON: an empty input clears a value; a number that does not
    read as one goes on as text, for the API to refuse in its own words."""
    out: dict[str, Any] = {}
    for name, field in defs.items():
        key = FIELD_INPUT + name
        if field.type == "multi_choice":
            chosen = [str(v) for v in form.getall(key, []) if str(v)]
            out[name] = chosen or None
            continue
        raw = str(form.get(key, "")).strip()
        out[name] = _number(raw) if field.type == "number" and raw else raw or None
    return out


def _number(raw: str) -> Any:
    for read in (int, float):
        try:
            return read(raw)
        except ValueError:
            continue
    return raw


@_acting
async def post_fields(request: web.Request, user: auth.User, ticket_id: int, form) -> web.StreamResponse:
    """Every custom field at once, checked and stored as ``PATCH /tickets/{id} {"fields"}`` does."""
    defs = await request.app[auth.DB].run_read(fields_store.definitions, user.tenant_id)
    await _change(request, user, ticket_id, {"fields": form_values(defs, form)}, None)
    raise _back(request, "ticket.saved")


def setup_routes(app: web.Application, bus: Bus | None, classes: Mapping[str, str], secret_key: str) -> None:
    if bus is not None:
        app[BUS] = bus
    app[CLASSES] = classes
    app[SECRET] = secret_key
    for name, handler in (("messages", post_message), ("status", post_status), ("assignee", post_assignee),
                          ("priority", post_priority), ("tags", post_tags), ("fields", post_fields)):
        app.router.add_post(f"/tickets/{{number}}/{name}", handler)
