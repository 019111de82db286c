"""The console's ops page (``/ops``, admins): what ``switchboard ops streams|dead`` shows, and
replaying or dropping one's own tenant's dead letters.

It lives in ``ops/`` because it drives ``ops.streams``; the console may not import ops, so
the page uses the console's sign-in, layout and catalogue from here and ``ops.roles``
mounts it next to the console. Streams, groups and heartbeats carry no tenant data and are
shown whole; a dead letter is shown, replayed or dropped only when its envelope names the
admin's tenant; the others (and letters whose envelope cannot be read) are only counted.
"""

from __future__ import annotations

from urllib.parse import urlencode

import structlog
from aiohttp import web
from redis.exceptions import ResponseError

from console import auth, render
from core import keys
from ops import streams as ops

log = structlog.get_logger()
PER_STREAM = 500  # dead letters read per dead stream for the page
_ACTIONS = {"replay": "ops.replayed", "drop": "ops.dropped"}


async def _own_letters(redis, slug: str) -> tuple[list[dict], int]:
    """This tenant's dead letters, and how many belong to others (or to no readable envelope)."""
    rows = await ops.dead_list(redis, None, PER_STREAM)
    own = [r for r in rows if r.get("tenant") == slug]
    return own, len(rows) - len(own)


async def _own_letter(request: web.Request, stream: str, entry_id: str) -> dict | None:
    """One dead letter of the admin's tenant, or None (missing, another tenant's, unreadable)."""
    user: auth.User = request[auth.USER]
    if not stream.startswith(keys.DEAD_PREFIX):
        return None
    try:
        row = await ops.dead_show(request.app[auth.REDIS], stream, entry_id)
    except (ops.OpsError, ResponseError):  # no such stream or entry, or not an entry id
        return None
    return row if row.get("tenant") == user.tenant_slug else None


@auth.signed_in("admin")
async def page(request: web.Request) -> web.Response:
    user: auth.User = request[auth.USER]
    redis = request.app[auth.REDIS]
    letters, others = await _own_letters(redis, user.tenant_slug)
    done = request.query.get("done", "")
    return render.render(request, "ops.html", {
        "title_key": "ops.title", "page": "ops", "streams": await ops.streams(redis),
        "letters": letters, "others": others, "beats": await ops.heartbeats(redis),
        "notice": done if done in _ACTIONS.values() else None,
    })


@auth.signed_in("admin")
async def show(request: web.Request) -> web.Response:
    row = await _own_letter(request, request.query.get("stream", ""), request.query.get("id", ""))
    if row is None:
        return render.error(request, 404, "error.not_found")
    return render.render(request, "ops_dead.html", {"title_key": "ops.dead_letter", "page": "ops", "d": row})


def _act(action: str):
    @auth.signed_in("admin", form=True)
    async def handler(request: web.Request) -> web.Response:
        user: auth.User = request[auth.USER]
        form = await request.post()
        stream, entry_id = str(form.get("stream", "")), str(form.get("id", ""))
        if await _own_letter(request, stream, entry_id) is None:
            return render.error(request, 404, "error.not_found")
        redis = request.app[auth.REDIS]
        if action == "replay":
            [done] = await ops.dead_replay(redis, stream, [entry_id])
            log.info("ops.dead_replayed", tenant=user.tenant_slug, agent_id=user.id, dead_stream=stream,
                     dead_id=entry_id, stream=done["stream"], new_id=done["new_id"])
        else:
            await ops.dead_drop(redis, stream, [entry_id])
            log.info("ops.dead_dropped", tenant=user.tenant_slug, agent_id=user.id, dead_stream=stream,
                     dead_id=entry_id)
        raise web.HTTPSeeOther("/ops?" + urlencode({"done": _ACTIONS[action]}))
    handler.__name__ = f"dead_{action}"
    return handler


def setup_routes(app: web.Application) -> None:
    """Mount on an application ``console.setup_console`` has set up."""
    app.router.add_get("/ops", page)
    app.router.add_get("/ops/dead", show)
    for action in _ACTIONS:
        app.router.add_post(f"/ops/dead/{action}", _act(action))
