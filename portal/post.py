"""POST /portal/{token}/messages: a customer's message onto ``ingest.portal``, for the normalizer."""

from __future__ import annotations

import time
from dataclasses import dataclass

import structlog
from aiohttp import BodyPartReader, web

from connectors.portal.message import CONTENT_TYPE, PortalMessage
from core import keys
from core.envelope import Envelope
from portal import i18n
from portal.access import CSRF_COOKIE, SUBMISSION, Portal, csrf_passes, open_ticket
from portal.pages import PORTAL, accepts_messages, gone, language, render
from ticket_service.store import portal as store
from ticket_service.store import reply_tokens

log = structlog.get_logger()
MAX_TEXT = 20_000  # characters of one message
_FIELD_BYTES = 4 * MAX_TEXT + 1024  # a text field in UTF-8, with room for the form's own fields
_FIELDS = ("csrf", "submission", "lang", "text")


class Refused(Exception):
    """A post the page turns away: its status, the words key, and headers."""

    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.headers = status, headers or {}


@dataclass(slots=True)
class Form:
    fields: dict[str, str]
    filename: str = ""
    content_type: str = ""
    data: bytes = b""


async def _read_part(part: BodyPartReader, limit: int) -> bytes:
    """A part's bytes, or 413 past ``limit`` without reading the rest."""
    chunks, size = [], 0
    while chunk := await part.read_chunk(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise Refused(413)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_form(request: web.Request, max_file: int) -> Form:
    """The form's fields and at most one file, each bounded (multipart/form-data, RFC 7578)."""
    if request.content_length is not None and request.content_length > max_file + 2 * _FIELD_BYTES:
        raise Refused(413)
    if request.content_type == "application/x-www-form-urlencoded":  # a form without a file input
        if request.content_length is None or request.content_length > 2 * _FIELD_BYTES:
            raise Refused(413)
        posted = await request.post()
        return Form({name: posted[name] for name in _FIELDS if isinstance(posted.get(name), str)})
    if request.content_type != "multipart/form-data":
        raise Refused(400)
    form = Form({})
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise Refused(400)
        if part.name == "attachment" and part.filename:
            if form.filename:
                raise Refused(400)  # one file per message
            form.filename = part.filename[:255]
            form.content_type = part.headers.get("Content-Type", "application/octet-stream")[:255]
            form.data = await _read_part(part, max_file)
        elif part.name in _FIELDS and part.name not in form.fields:
            raw = await _read_part(part, _FIELD_BYTES)
            try:
                form.fields[part.name] = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise Refused(400) from None
        else:
            await _read_part(part, _FIELD_BYTES)  # an empty file input, or a field we do not take
    return form


async def rate_limit(portal: Portal, tenant_id: int, ticket_id: int) -> None:
    """Fixed hourly window in Redis, per ticket: every link of a ticket shares it."""
    now, window_s = time.time(), 3600
    window = int(now // window_s)
    key = keys.rate_key(f"portal:{tenant_id}:{ticket_id}", window)
    async with portal.bus.redis.pipeline(transaction=True) as pipe:
        pipe.incr(key)
        pipe.expire(key, window_s + 1)
        used, _ = await pipe.execute()
    if used > portal.settings.portal_posts_per_hour:
        raise Refused(429, {"Retry-After": str(max(1, int((window + 1) * window_s - now)))})


async def post_message(request: web.Request) -> web.Response:
    portal, token = request.app[PORTAL], request.match_info["token"]
    ticket = await open_ticket(portal, token)
    if ticket is None:
        return gone(request)
    lang = language(request)
    try:
        form = await read_form(request, portal.settings.portal_max_attachment)
        lang = language(request, form.fields.get("lang"))
        if not csrf_passes(portal, token, form.fields.get("csrf"), request.cookies.get(CSRF_COOKIE)):
            raise Refused(403)
        await rate_limit(portal, ticket.tenant_id, ticket.id)
        await _publish(request, portal, ticket, form)
    except Refused as exc:
        log.info("portal.post_refused", status=exc.status, ticket_id=ticket.id)
        return _refused(request, portal, token, lang, exc)
    raise web.HTTPSeeOther(f"/portal/{token}?lang={lang}&sent=1")


async def _publish(request: web.Request, portal: Portal, ticket, form: Form) -> None:
    text = form.fields.get("text", "").replace("\r\n", "\n").strip()
    submission = form.fields.get("submission", "")
    if (not text and not form.filename) or len(text) > MAX_TEXT or not SUBMISSION.fullmatch(submission):
        raise Refused(400)
    if not accepts_messages(portal, ticket):
        raise Refused(409)
    async with portal.db.write() as conn:
        who = await store.customer_identity(conn, ticket.tenant_id, ticket.customer_id)
        account = await store.portal_account(conn, ticket.tenant_id, ticket.tenant_slug)
    if who is None:
        raise Refused(409)
    message = PortalMessage(
        ticket_id=ticket.id, submission=submission, text=text,
        # The normalizer threads the message by this signed token, to this ticket only.
        reply_token=reply_tokens.make_token(portal.links.secret_key, ticket.tenant_id, ticket.id),
        sender=(who.kind, who.scope, who.value, who.name), filename=form.filename,
        content_type=form.content_type, data=form.data,
    )
    env = Envelope(tenant=ticket.tenant_slug, channel=store.CHANNEL, account=str(account),
                   payload=message.to_bytes(), content_type=CONTENT_TYPE,
                   meta={"remote_addr": request.remote or "", "verified": "portal-link"})
    await portal.bus.publish(keys.ingest_stream(store.CHANNEL), env)  # answered only after XADD
    log.info("portal.message_accepted", tenant=ticket.tenant_slug, ticket_id=ticket.id, envelope_id=env.id,
             size=len(env.payload))


def _refused(request: web.Request, portal: Portal, token: str, lang: str, exc: Refused) -> web.Response:
    words = i18n.TEXT[lang]
    why = words[f"refused.{exc.status}"].format(size=i18n.size_text(portal.settings.portal_max_attachment))
    response = render(request, "refused.html", lang, status=exc.status, why=why, back=f"/portal/{token}?lang={lang}")
    response.headers.update(exc.headers)
    return response
