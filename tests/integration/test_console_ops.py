"""The ops page over real HTTP and real Redis: admins only; streams and heartbeats shown; dead
letters of the admin's own tenant shown, replayed and dropped, other tenants' only counted;
a form without its CSRF token is refused."""

from __future__ import annotations

import re

import pytest
from aiohttp.test_utils import TestServer
from console_support import console_app, person, signed_in
from support import make_mail

from core.envelope import Envelope
from ticket_service.store import admin


@pytest.fixture
def database_url(sqlite_url):
    """The page is about the bus; one database engine is enough."""
    return sqlite_url


async def _dead_letters(system) -> dict:
    """Three dead letters on dead.ingest.email: acme's, globex's, and one no envelope can be read from."""
    async with system.db.write() as conn:
        globex = await admin.create_tenant(conn, "globex")
    await person(system, system.tenant, "root@acme.test", "admin", "Acme Admin")
    await person(system, system.tenant, "boss@acme.test", "supervisor", "Acme Boss")
    await person(system, globex, "root@globex.test", "admin", "Globex Admin")
    missing = system.account + 7
    ours = await system.publish(make_mail(subject="Lost parcel")[0], account=missing)
    theirs = Envelope(tenant="globex", channel="email", account=str(missing), content_type="message/rfc822",
                      payload=make_mail(subject="globex private matter")[0])
    await system.bus.publish("ingest.email", theirs)
    await system.bus.redis.xadd("ingest.email", {b"e": b"junk"})
    await system.drain()
    assert await system.bus.redis.xlen("dead.ingest.email") == 3
    by_payload = {f[b"e"]: i.decode() for i, f in await system.bus.redis.xrange("dead.ingest.email")}
    ids = [by_payload[ours.pack()], by_payload[theirs.pack()], by_payload[b"junk"]]
    return {"ours": ours, "theirs": theirs, "ids": ids}


def _letter_ids(html: str) -> list[str]:
    return re.findall(r'<tr class="dead" data-id="([^"]+)"', html)


async def test_admin_sees_streams_heartbeats_and_only_own_dead_letters_and_replays_one(system):
    seen = await _dead_letters(system)
    our_id, their_id, junk_id = seen["ids"]
    async with TestServer(console_app(system)) as server:
        async with signed_in(server, "boss@acme.test") as boss:
            assert (await boss.get("/ops"))[0] == 404  # supervisors do not run the bus
            assert 'id="nav-ops"' not in await boss.page("/dashboard")
        async with signed_in(server, "root@acme.test") as root:
            html = await root.page("/ops")
            assert 'id="nav-ops"' in html and 'id="nav-dashboard"' in html
            assert re.search(r'<tr data-stream="ingest.email"><td>ingest.email</td><td>3</td>\s*<td>normalizer</td>'
                             r'<td>0</td>\s*<td>0</td>', html)
            assert '<tr data-role="normalizer">' in html  # the drained worker's heartbeat
            assert _letter_ids(html) == [our_id]
            assert f'data-envelope="{seen["ours"].id}"' in html and "no email account" in html
            assert seen["theirs"].id not in html and "globex" not in html
            assert 'id="dead-others">Dead letters of other tenants or without a readable envelope (not shown): 2<' \
                in html

            shown = await root.page(f"/ops/dead?stream=dead.ingest.email&id={our_id}")
            assert "Subject: Lost parcel" in shown
            for hidden in (their_id, junk_id, "1-1", "not-an-id"):
                status, _, _ = await root.get(f"/ops/dead?stream=dead.ingest.email&id={hidden}")
                assert status == 404, hidden
            assert (await root.get(f"/ops/dead?stream=ingest.email&id={our_id}"))[0] == 404

            # Another tenant's letter cannot be replayed or dropped, even with the right token.
            for action in ("replay", "drop"):
                status, _, body = await root.post(f"/ops/dead/{action}", {"stream": "dead.ingest.email",
                                                                          "id": their_id}, csrf_from="/ops")
                assert status == 404 and "Not found." in body
            # No token, or a wrong one: 403 and nothing moves.
            status, _, body = await root.post("/ops/dead/replay", {"stream": "dead.ingest.email", "id": our_id})
            assert status == 403 and "did not come from this site" in body
            status, _, _ = await root.post("/ops/dead/drop", {"stream": "dead.ingest.email", "id": our_id,
                                                              "csrf": "forged"})
            assert status == 403
            assert await system.bus.redis.xlen("dead.ingest.email") == 3

            length = await system.bus.redis.xlen("ingest.email")
            status, headers, _ = await root.post("/ops/dead/replay", {"stream": "dead.ingest.email", "id": our_id},
                                                 csrf_from="/ops")
            assert (status, headers["Location"]) == (303, "/ops?done=ops.replayed")
            remaining = [i.decode() for i, _ in await system.bus.redis.xrange("dead.ingest.email")]
            assert sorted(remaining) == sorted([their_id, junk_id])
            assert await system.bus.redis.xlen("ingest.email") == length + 1
            [(_, fields)] = await system.bus.redis.xrevrange("ingest.email", count=1)
            assert Envelope.unpack(fields[b"e"]).id == seen["ours"].id  # the very envelope, back on its stream
            html = await root.page("/ops?done=ops.replayed")
            assert 'id="notice">Dead letter put back on its stream.<' in html
            assert _letter_ids(html) == [] and 'id="dead-empty"' in html

        async with signed_in(server, "root@globex.test") as theirs:
            html = await theirs.page("/ops")
            assert _letter_ids(html) == [their_id] and "Lost parcel" not in html
            status, headers, _ = await theirs.post("/ops/dead/drop", {"stream": "dead.ingest.email", "id": their_id},
                                                   csrf_from="/ops")
            assert (status, headers["Location"]) == (303, "/ops?done=ops.dropped")
            remaining = [i.decode() for i, _ in await system.bus.redis.xrange("dead.ingest.email")]
            assert remaining == [junk_id]  # only the unreadable one, which no tenant's admin may touch
