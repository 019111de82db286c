"""A customer's message from the status page: CSRF, limits, onto ``ingest.portal``, stored by the
real normalizer on the ticket the link names (reopening a solved one); replies go out on the
customer's own channel and carry the status link."""

from __future__ import annotations

from email import message_from_bytes, policy

import pytest
from portal_support import CUSTOMER_TEXT, REPLY_TEXT, running_world, send_replies
from sqlalchemy import select, update

from ticket_service.store.tables import attachments, outbox, tickets


@pytest.fixture
async def world(system):
    async with running_world(system, portal_posts_per_hour=3, portal_max_attachment=64 * 1024) as w:
        yield w


async def test_a_posted_message_is_stored_on_the_ticket_and_shown_on_the_page(world):
    link = await world.link()
    fields = await world.form(link)
    status, _, headers = await world.post(link, {**fields, "text": "补充：收件人电话 13800138000"},
                                          file=("收据.pdf", "application/pdf", b"%PDF-1.4 receipt"))
    assert status == 303 and headers["Location"] == f"{world.path(link)}?lang=en&sent=1"
    [env] = await world.portal_entries()
    assert (env.channel, env.tenant) == ("portal", "acme")
    await world.system.drain()
    [first, added] = await world.system.messages()
    assert (added.ticket_id, added.direction, added.channel) == (world.ticket.id, "in", "portal")
    assert added.customer_id == first.customer_id and added.text == "补充：收件人电话 13800138000"
    assert added.thread_rule == "reply_token"
    assert len(await world.system.tickets()) == 1
    status, html, _ = await world.get(world.path(link) + "?sent=1")
    assert "补充：收件人电话 13800138000" in html and "your message was received" in html
    async with world.system.db.read() as conn:
        [file_id] = (await conn.execute(select(attachments.c.id).where(attachments.c.message_id == added.id))).scalars()
    async with world.http.get(f"{world.path(link)}/attachments/{file_id}") as r:
        assert r.status == 200 and await r.read() == b"%PDF-1.4 receipt"
        assert r.headers["Content-Disposition"].startswith("attachment;")


async def test_the_same_form_sent_twice_is_one_message(world):
    link = await world.link()
    fields = {**await world.form(link), "text": "Is there any news?"}
    assert (await world.post(link, fields))[0] == 303
    assert (await world.post(link, fields))[0] == 303
    await world.system.drain()
    assert [m.text for m in await world.system.messages()] == [CUSTOMER_TEXT, "Is there any news?"]


async def test_a_post_without_the_csrf_token_is_refused_and_nothing_is_published(world):
    link = await world.link()
    fields = await world.form(link)
    del fields["csrf"]
    status, html, _ = await world.post(link, {**fields, "text": "hello"})
    assert status == 403 and "Reload the page" in html
    world.http.session.cookie_jar.clear()  # the right field without its cookie: refused too
    fields = await world.form(link)
    world.http.session.cookie_jar.clear()
    assert (await world.post(link, {**fields, "text": "hello"}))[0] == 403
    assert await world.portal_entries() == []


async def test_a_csrf_token_of_another_link_is_refused(world):
    other = await world.make_ticket(subject="Other", sender="Wang Fang <wang.fang@example.cn>")
    theirs = await world.form(await world.link(other.id))
    link = await world.link()
    await world.form(link)  # the cookie for this link
    status, _, _ = await world.post(link, {**theirs, "text": "hello"})
    assert status == 403 and await world.portal_entries() == []


async def test_a_post_with_a_bad_link_is_not_found(world):
    link = await world.link()
    fields = await world.form(link)
    async with world.http.post(world.path(link)[:-2] + "xx/messages", data={**fields, "text": "x"}) as r:
        assert r.status == 404 and "Page not found" in await r.text()
    assert await world.portal_entries() == []


async def test_posts_past_the_hourly_limit_are_refused_with_retry_after(world):
    link = await world.link()
    for n in range(3):
        fields = await world.form(link)
        assert (await world.post(link, {**fields, "text": f"message {n}"}))[0] == 303
    fields = await world.form(link)
    status, html, headers = await world.post(link, {**fields, "text": "one too many"})
    assert status == 429 and int(headers["Retry-After"]) > 0 and "Too many messages" in html
    assert len(await world.portal_entries()) == 3


async def test_an_empty_message_and_an_oversized_file_are_refused(world):
    link = await world.link()
    fields = await world.form(link)
    assert (await world.post(link, {**fields, "text": "   "}))[0] == 400
    big = b"x" * (world.rt.settings.portal_max_attachment + 1)
    status, html, _ = await world.post(link, {**fields, "text": "see file"}, file=("big.bin", "application/octet-stream", big))
    assert status == 413 and "too large" in html
    assert await world.portal_entries() == []


async def test_a_message_reopens_a_solved_ticket(world):
    async with world.system.db.write() as conn:
        await conn.execute(update(tickets).where(tickets.c.id == world.ticket.id)
                           .values(status="solved", closed_at=tickets.c.updated_at))
    link = await world.link()
    fields = await world.form(link)
    assert (await world.post(link, {**fields, "text": "Still not here."}))[0] == 303
    await world.system.drain()
    ticket = await world.ticket_row()
    assert ticket.status == "open"
    assert [e["type"] for e in await world.system.events()][-2:] == ["ticket.reopened", "ticket.status_changed"]


async def test_a_reply_after_a_portal_message_goes_by_email_and_carries_the_link(world, tmp_path):
    link = await world.link()
    fields = await world.form(link)
    assert (await world.post(link, {**fields, "text": "Any news?"}))[0] == 303
    await world.system.drain()
    async with world.system.db.write() as conn:  # as the router does from the first message
        await conn.execute(update(tickets).where(tickets.c.id == world.ticket.id).values(language="zh"))
    agent = await world.agent("Li Lei", "li.lei@acme.test")
    await world.write("reply", REPLY_TEXT, agent)
    await send_replies(world)
    async with world.system.db.read() as conn:
        [row] = (await conn.execute(select(outbox))).all()
    assert (row.channel, row.recipient, row.status) == ("email", "zhang.wei@example.cn", "sent")
    [mail_file] = (tmp_path / "outbox" / "new").iterdir()
    text = message_from_bytes(mail_file.read_bytes(), policy=policy.default).get_content()
    body, _, signature = text.replace("\r\n", "\n").partition("\n-- \n")  # RFC 3676 §4.3 separator
    assert body.strip() == REPLY_TEXT
    label, url = signature.strip().rsplit(" ", 1)
    assert label == "查看处理进度或补充信息："  # the ticket's language (the router's) is Chinese
    status, html, _ = await world.get(world.path(url))
    assert status == 200 and REPLY_TEXT in html and "Any news?" in html
    assert url not in html  # the stored reply is the agent's words; the link was added on sending
