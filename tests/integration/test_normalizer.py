"""The normalizer from entries on ingest.email to tickets, on SQLite and PostgreSQL."""

from sqlalchemy import select, update
from support import make_mail

from core.envelope import Envelope
from core.ids import now_ms
from ticket_service.store.tables import attachments, customers, tickets


async def test_new_mail_opens_a_ticket_for_the_sender(system):
    raw, msgid = make_mail(subject="订单 1042 还没有发货", body="您好，请帮忙查一下。")
    env = await system.publish(raw)
    await system.drain()
    [ticket] = await system.tickets()
    [message] = await system.messages()
    assert (ticket.number, ticket.status, ticket.subject, ticket.channel) == (1, "new", "订单 1042 还没有发货", "email")
    assert (message.ticket_id, message.sender, message.sender_name) == (ticket.id, "zhang.wei@example.cn", "Zhang Wei")
    assert message.dedup_key == msgid.strip("<>") and "请帮忙查一下" in message.text
    [event] = await system.events()
    assert event["type"] == "ticket.created" and event["ticket_id"] == ticket.id
    assert event["received_at"] == env.received_at and event["message_id"] == message.id


async def test_reply_with_references_appends_and_duplicate_is_dropped(system):
    first, root = make_mail()
    reply, _ = make_mail(subject="Re: Where is my order?", body="Any news?", refs=[root])
    await system.publish(first)
    await system.publish(reply)
    await system.publish(first)  # the same mail delivered twice (two MX paths)
    await system.drain()
    assert len(await system.tickets()) == 1
    msgs = await system.messages()
    assert len(msgs) == 2 and msgs[0].ticket_id == msgs[1].ticket_id
    assert [e["type"] for e in await system.events()] == ["ticket.created", "message.added"]


async def test_reply_arriving_before_its_original_still_threads(system):
    first, root = make_mail()
    reply, _ = make_mail(subject="Re: Where is my order?", refs=[root])
    await system.publish(reply)
    await system.publish(first)
    await system.drain()
    assert len(await system.tickets()) == 1 and len(await system.messages()) == 2


async def test_subject_ticket_number_threads_only_for_its_customer(system):
    await system.publish(make_mail()[0])
    await system.drain()
    own, _ = make_mail(subject="[#1] one more thing", body="from the customer")
    stranger, _ = make_mail(subject="[#1] hijack", sender="eve@evil.test")
    await system.publish(own)
    await system.publish(stranger)
    await system.drain()
    ticket_rows = await system.tickets()
    msgs = await system.messages()
    assert len(ticket_rows) == 2
    assert msgs[1].ticket_id == ticket_rows[0].id  # the customer's follow-up joined ticket 1
    assert msgs[2].ticket_id == ticket_rows[1].id  # the stranger got a ticket of their own


async def test_auto_replies_never_reopen_and_bulk_mail_opens_a_ticket_marked_auto(system):
    first, root = make_mail()
    await system.publish(first)
    await system.drain()
    async with system.db.write() as conn:
        await conn.execute(update(tickets).values(status="solved", closed_at=now_ms()))
    ooo, _ = make_mail(subject="Out of office", refs=[root], headers={"Auto-Submitted": "auto-replied"})
    bulk, _ = make_mail(subject="Newsletter", sender="news@shop.test", headers={"Precedence": "bulk"})
    await system.publish(ooo)
    await system.publish(bulk)
    await system.drain()
    ticket, newsletter = await system.tickets()
    assert ticket.status == "solved"
    assert (newsletter.subject, newsletter.auto, newsletter.auto_reason) == ("Newsletter", True, "precedence:bulk")
    msgs = await system.messages()
    assert (msgs[1].ticket_id, msgs[1].auto_reason.startswith("auto-submitted")) == (ticket.id, True)
    assert (msgs[2].ticket_id, msgs[2].auto_reason) == (newsletter.id, "precedence:bulk")
    created = [(e["type"], e["ticket_id"], e.get("auto")) for e in await system.events()]
    assert created == [("ticket.created", ticket.id, None), ("ticket.created", newsletter.id, "precedence:bulk")]


async def test_follow_up_reopens_within_window_and_opens_linked_ticket_after(system):
    first, root = make_mail()
    await system.publish(first)
    await system.drain()
    async with system.db.write() as conn:
        await conn.execute(update(tickets).values(status="closed", closed_at=now_ms()))
    await system.publish(make_mail(subject="Re: order", refs=[root])[0])
    await system.drain()
    [ticket] = await system.tickets()
    assert (ticket.status, ticket.closed_at) == ("open", None)
    # The reopen also says the status moved, naming the message that moved it.
    changed = (await system.events())[-1]
    reopening = (await system.messages())[-1]
    assert (changed["type"], changed["from"], changed["to"], changed["message_id"]) == (
        "ticket.status_changed", "closed", "open", reopening.id)
    assert ticket.status_at >= reopening.created_at
    long_ago = now_ms() - system.settings.reopen_window_s * 1000 - 60_000
    async with system.db.write() as conn:
        await conn.execute(update(tickets).values(status="closed", closed_at=long_ago))
    await system.publish(make_mail(subject="Re: order again", refs=[root])[0])
    await system.publish(make_mail(subject="Re: order again 2", refs=[root])[0])
    await system.drain()
    old, new = await system.tickets()
    assert (new.parent_id, new.status, old.status) == (old.id, "new", "closed")
    msgs = await system.messages()
    assert [m.ticket_id for m in msgs] == [old.id, old.id, new.id, new.id]
    assert [e["type"] for e in await system.events()][-4:] == [
        "ticket.reopened", "ticket.status_changed", "ticket.created", "message.added"]


async def test_attachments_go_to_the_blob_store(system):
    pdf = b"%PDF-1.4 invoice " * 100
    raw, _ = make_mail(attachments=[("发票.pdf", "application/pdf", pdf)])
    await system.publish(raw)
    await system.drain()
    async with system.db.read() as conn:
        [att] = (await conn.execute(select(attachments))).all()
    assert (att.filename, att.content_type, att.size) == ("发票.pdf", "application/pdf", len(pdf))
    assert await system.bus.blobs.get(att.blob_key) == pdf


async def test_bad_entries_go_to_dead_letters_between_good_ones(system):
    # Poison pill: garbage and an unknown account between two good mails.
    await system.publish(make_mail(subject="good one")[0])
    await system.publish(b"\x00\x01\x02 not a mail at all \xff")
    await system.publish(make_mail(subject="wrong account")[0], account=9999)
    await system.publish(make_mail(subject="good two")[0])
    worker = await system.drain()
    assert [t.subject for t in await system.tickets()] == ["good one", "good two"]
    dead = await system.bus.redis.xrange("dead.ingest.email")
    errors = sorted(d[b"error"].decode() for _, d in dead)
    assert len(dead) == 2 and worker.counters["dead"] == 2
    assert errors[0].startswith("UnknownAccount: no email account '9999'")
    assert errors[1].startswith("UnparseableMail")


async def test_vip_customer_ticket_gets_priority(system):
    await system.publish(make_mail()[0])
    await system.drain()
    async with system.db.write() as conn:
        await conn.execute(update(customers).values(vip_tier=3))
    await system.publish(make_mail(subject="another question")[0])
    await system.drain()
    assert [t.priority for t in await system.tickets()] == [0, 3]


_POISON_TRIGGER = {
    "sqlite": ["CREATE TRIGGER reject_poison BEFORE INSERT ON messages WHEN NEW.subject = 'poison' "
               "BEGIN SELECT RAISE(ABORT, 'poison row'); END"],
    "postgresql": [
        "CREATE FUNCTION reject_poison() RETURNS trigger AS $$ BEGIN IF NEW.subject = 'poison' THEN "
        "RAISE EXCEPTION 'poison row' USING ERRCODE = 'check_violation'; END IF; RETURN NEW; END $$ "
        "LANGUAGE plpgsql",
        "CREATE TRIGGER reject_poison BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION reject_poison()",
    ],
}


async def test_a_row_the_database_rejects_fails_alone_and_the_rest_of_its_batch_is_stored(system):
    # The batch is stored in one transaction; the database refuses one row of it, so the
    # batch is split and each envelope stored in its own transaction.
    async with system.db.write() as conn:
        for statement in _POISON_TRIGGER[conn.dialect.name]:
            await conn.exec_driver_sql(statement)
    subjects = [f"case {i}" if i != 4 else "poison" for i in range(10)]
    for subject in subjects:
        await system.publish(make_mail(subject=subject)[0])
    worker = await system.drain()
    msgs = await system.messages()
    assert sorted(m.subject for m in msgs) == sorted(s for s in subjects if s != "poison")
    assert len({m.ticket_id for m in msgs}) == 9
    assert [e["type"] for e in await system.events()] == ["ticket.created"] * 9
    [(_, dead)] = await system.bus.redis.xrange("dead.ingest.email")
    assert b"poison row" in dead[b"error"]
    assert Envelope.unpack(dead[b"e"]).payload.count(b"Subject: poison") == 1
    assert worker.counters["ok"] == 9 and worker.counters["dead"] == 1


async def test_each_stored_message_is_logged_with_its_envelope(system):
    from structlog.testing import capture_logs

    env = await system.publish(make_mail(subject="订单 7 的发票")[0])
    with capture_logs() as logs:
        await system.drain()
    [ticket] = await system.tickets()
    [message] = await system.messages()
    [line] = [entry for entry in logs if entry["event"].startswith("message.")]
    assert line["event"] == "message.created"
    assert (line["ticket_id"], line["message_id"], line["rule"]) == (ticket.id, message.id, "")
    assert (line["trace_id"], line["tenant"], line["channel"], line["envelope_id"]) == (
        env.trace_id, env.tenant, "email", env.id)
