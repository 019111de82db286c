"""``/events``: server-sent events for the signed-in user's tenant, from ``ticket.events``.

One reader per process follows the stream with plain XREAD from ``$`` (not a consumer group:
every console process sees every event, and a page only needs what happens while it is
open) and hands each event to the open pages of its tenant.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import defaultdict

import structlog
from aiohttp import web
from redis.asyncio import Redis

from console import auth
from core.envelope import Envelope
from core.errors import EnvelopeError, PermanentError
from core.keys import TICKET_EVENTS
from ticket_service.events import read_event

log = structlog.get_logger()
KEEPALIVE_S = 15.0  # a comment line this often keeps proxies from closing an idle stream
# An open stream checks its session again this often: signed out elsewhere, a new password or
# a disabled agent ends it, as the next page load would.
RECHECK_S = 15.0
_BLOCK_MS = 5000
_QUEUE = 100  # a page that falls this far behind misses events, not memory
_FIELDS = ("type", "ticket_id", "number", "message_id", "status")


class EventHub:
    """Fans ``ticket.events`` out to the pages listening, by tenant."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.pages: dict[int, set[asyncio.Queue]] = defaultdict(set)
        self.slugs: dict[int, str] = {}
        self.reader: asyncio.Task | None = None

    def subscribe(self, tenant_id: int, slug: str) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(_QUEUE)
        self.pages[tenant_id].add(queue)
        self.slugs[tenant_id] = slug
        if self.reader is None or self.reader.done():
            self.reader = asyncio.create_task(self._read())
        return queue

    def unsubscribe(self, tenant_id: int, queue: asyncio.Queue) -> None:
        self.pages[tenant_id].discard(queue)
        if not self.pages[tenant_id]:
            del self.pages[tenant_id]

    async def _read(self) -> None:
        last = "$"
        while self.pages:
            try:
                reply = await self.redis.xread({TICKET_EVENTS: last}, count=100, block=_BLOCK_MS)
            except Exception as exc:  # Redis restarting: the pages wait, the reader retries
                log.error("console.events_read_failed", error=str(exc))
                await asyncio.sleep(1)
                continue
            for _, entries in reply or []:
                for entry_id, fields in entries:
                    last = entry_id
                    self._dispatch(fields)

    def _dispatch(self, fields: dict) -> None:
        try:
            env = Envelope.unpack(fields[b"e"])
            event = read_event(env)
        except (KeyError, EnvelopeError, PermanentError):
            return
        tenant_id = event.get("tenant_id")
        for tid, queues in self.pages.items():
            if tenant_id == tid or (tenant_id is None and env.tenant == self.slugs.get(tid)):
                shown = {k: event[k] for k in _FIELDS if k in event}
                for queue in queues:
                    with contextlib.suppress(asyncio.QueueFull):
                        queue.put_nowait(shown)

    async def close(self) -> None:
        for queues in self.pages.values():
            for queue in queues:
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(None)
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.reader


HUB = web.AppKey("console_events", EventHub)


@auth.signed_in()
async def stream(request: web.Request) -> web.StreamResponse:
    """text/event-stream of ``ticket`` events (type, ticket id, number) for this tenant."""
    user: auth.User = request[auth.USER]
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"})
    hub = request.app[HUB]
    # Listening before the answer starts: the page fetches itself again once the stream is
    # open (console.js), so what happened between its rendering and now is on the page, and
    # what happens from now on comes as events.
    queue = hub.subscribe(user.tenant_id, user.tenant_slug)
    loop = asyncio.get_running_loop()
    checked = loop.time()
    try:
        await response.prepare(request)
        await response.write(b"retry: 3000\n\n")
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), min(KEEPALIVE_S, RECHECK_S))
            except TimeoutError:
                event = {}
            if loop.time() - checked >= RECHECK_S:
                if await auth.current_user(request) is None:
                    break
                checked = loop.time()
            if event is None:
                break
            if not event:
                await response.write(b": keepalive\n\n")
                continue
            # WHATWG HTML §9.2: one "event:" and one "data:" line; JSON holds no newline.
            await response.write(f"event: ticket\ndata: {json.dumps(event)}\n\n".encode())
    except ConnectionResetError:  # the page was closed
        pass
    finally:
        hub.unsubscribe(user.tenant_id, queue)
    return response


def setup_routes(app: web.Application, redis: Redis) -> None:
    app[HUB] = hub = EventHub(redis)

    async def close(_app: web.Application) -> None:
        await hub.close()

    app.on_shutdown.append(close)
    app.router.add_get("/events", stream)
