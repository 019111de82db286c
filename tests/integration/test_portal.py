"""The customer status page over real HTTP against the api role's application: signed links
(good, expired, tampered, forged for another ticket, revoked), what the page shows and never
shows, its headers, languages and time zone."""

from __future__ import annotations

import asyncio
import re
import sys

import pytest
from portal_support import CUSTOMER_TEXT, NOTE_TEXT, REPLY_TEXT, expired, running_world
from sqlalchemy import select, update
from support import role_env

from core.ids import now_ms
from ticket_service import portal_links
from ticket_service.store.replies import Draft, store_reply
from ticket_service.store.tables import attachments, tenants


@pytest.fixture
async def world(system):
    async with running_world(system) as w:
        yield w


def _gone(status: int, html: str, *secrets: str) -> None:
    """The one 'not found' page: 404, no ticket data."""
    assert status == 404
    assert "Page not found" in html
    for secret in secrets:
        assert secret not in html


async def test_a_good_link_shows_the_ticket_and_its_public_conversation_only(world):
    agent = await world.agent("Li Lei", "li.lei@acme.test")
    await world.write("note", NOTE_TEXT, agent)
    await world.write("reply", REPLY_TEXT, agent)
    status, html, headers = await world.get(world.path(await world.link()))
    assert status == 200
    assert f"Request #{world.ticket.number}" in html and "订单 1042 未送达" in html
    assert "In progress" in html or "Received" in html
    assert CUSTOMER_TEXT in html and REPLY_TEXT in html
    assert "Li Lei" in html  # the agent by display name only
    assert NOTE_TEXT not in html and "li.lei@acme.test" not in html and "zhang.wei@example.cn" not in html
    csp = headers["Content-Security-Policy"]
    assert "'unsafe-inline'" not in csp and "style-src 'self'" in csp and "default-src 'none'" in csp
    assert headers["Referrer-Policy"] == "no-referrer" and headers["Cache-Control"] == "no-store"
    assert "<script" not in html and "style=" not in html and "<style" not in html


async def test_the_stylesheet_is_our_own_file(world):
    status, css, headers = await world.get("/portal/static/portal.css")
    assert status == 200 and headers["Content-Type"].startswith("text/css")
    assert ".messages" in css and "@import" not in css and "url(" not in css


async def test_an_expired_link_is_not_found(world):
    status, html, _ = await world.get(world.path(await world.link(issued_at=expired(world))))
    _gone(status, html, CUSTOMER_TEXT, "订单 1042")


async def test_a_tampered_link_is_not_found(world):
    link = await world.link()
    token = link.rsplit("/", 1)[1]
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    for bad in (flipped, token + "x", token.replace(".", "-"), "not-a-token", "0.0.0." + "A" * 43):
        status, html, _ = await world.get(f"/portal/{bad}")
        _gone(status, html, CUSTOMER_TEXT, "订单 1042")


async def test_another_tickets_id_in_a_forged_token_is_not_found(world):
    other = await world.make_ticket(subject="Invoice for Wang Fang", sender="Wang Fang <wang.fang@example.cn>")
    claim = portal_links.read((await world.link()).rsplit("/", 1)[1])
    # The first ticket's MAC and expiry under the other ticket's id.
    forged = f"{claim.tenant_id:x}.{other.id:x}.{claim.expires:x}.{claim.mac}"
    status, html, _ = await world.get(f"/portal/{forged}")
    _gone(status, html, "Invoice for Wang Fang", "订单 1042")
    status, html, _ = await world.get(world.path(await world.link(other.id)))
    assert status == 200 and "Invoice for Wang Fang" in html and CUSTOMER_TEXT in html  # its own link works
    assert "订单 1042 未送达" not in html  # and shows nothing of the first ticket


async def test_the_api_issues_a_fresh_link_and_revokes_every_link_issued_before(world):
    old = await world.link()
    status, body = await world.api("POST", f"/tickets/{world.ticket.id}/portal-link")
    assert status == 201 and body["ticket_id"] == world.ticket.id
    assert body["url"].startswith(world.rt.settings.effective_public_url + "/portal/")
    assert (await world.get(world.path(body["url"])))[0] == 200
    status, body2 = await world.api("DELETE", f"/tickets/{world.ticket.id}/portal-link")
    assert (status, body2) == (200, {"ticket_id": world.ticket.id, "revoked": True})
    for revoked in (old, body["url"]):
        status, html, _ = await world.get(world.path(revoked))
        _gone(status, html, CUSTOMER_TEXT)
    assert (await world.get(world.path(await world.link())))[0] == 200  # issued after: works
    assert (await world.api("DELETE", "/tickets/999999/portal-link"))[0] == 404


async def test_the_cli_revokes_a_tickets_links(world, tmp_path, redis_url, database_url):
    link = await world.link()
    env = role_env(tmp_path, redis_url, database_url)
    cli = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ops.cli", "ticket", "revoke-link", str(world.ticket.number), "--tenant", "acme",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(cli.communicate(), 60)
    assert cli.returncode == 0, err.decode()
    assert f"links of ticket {world.ticket.number} revoked" in out.decode()
    status, html, _ = await world.get(world.path(link))
    _gone(status, html, CUSTOMER_TEXT)


async def test_chinese_by_accept_language_english_by_the_switch_link(world):
    path = world.path(await world.link())
    status, html, headers = await world.get(path, lang="zh-CN,zh;q=0.9,en;q=0.8")
    assert status == 200 and '<html lang="zh-CN">' in html
    assert f"工单 #{world.ticket.number}" in html and "状态" in html and "发送" in html
    assert headers["Vary"] == "Accept-Language"
    switch = re.search(r'<nav class="lang"><a href="([^"]+)"', html)[1]
    assert switch == f"{path}?lang=en"
    status, html, _ = await world.get(switch, lang="zh-CN")
    assert '<html lang="en">' in html and f"Request #{world.ticket.number}" in html and "Send" in html
    status, html, _ = await world.get(path, lang="fr-FR, en;q=0.5")
    assert '<html lang="en">' in html
    _, html, _ = await world.get("/portal/nothing", lang="zh")
    assert "页面不存在" in html


async def test_dates_are_shown_in_the_tenants_time_zone(world):
    path = world.path(await world.link())
    _, utc_html, _ = await world.get(path)
    assert re.search(r"<time>\d{4}-\d\d-\d\d \d\d:\d\d UTC</time>", utc_html)
    async with world.system.db.write() as conn:
        await conn.execute(update(tenants).where(tenants.c.id == world.tenant)
                           .values(settings={"timezone": "Asia/Shanghai"}))
    _, html, _ = await world.get(path)
    assert re.search(r"<time>\d{4}-\d\d-\d\d \d\d:\d\d CST</time>", html)
    assert "UTC</time>" not in html


async def test_a_file_of_an_internal_note_is_not_downloadable_through_the_link(world):
    blobs = world.system.bus.blobs
    key = await blobs.put(b"internal plan")
    file = {"filename": "plan.txt", "content_type": "text/plain", "size": 13, "sha256": key.rsplit("/", 1)[1],
            "blob_key": key}
    draft = Draft(kind="note", text=NOTE_TEXT, files=[file])
    await world.system.db.run_write(store_reply, world.tenant, world.ticket.id, draft, "", now_ms())
    async with world.system.db.read() as conn:
        [file_id] = (await conn.execute(select(attachments.c.id).where(attachments.c.filename == "plan.txt"))).scalars()
    status, html, _ = await world.get(f"{world.path(await world.link())}/attachments/{file_id}")
    _gone(status, html, "internal plan")
