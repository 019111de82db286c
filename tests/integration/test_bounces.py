"""Bounces, out-of-office and our own mail coming back: stored on the right ticket, never a new one."""

from sqlalchemy import update
from support import SUPPORT, make_mail

from core.ids import now_ms
from ticket_service.store import reply_tokens
from ticket_service.store.tables import tickets

SECRET = "bounce-secret"


def _dsn(original_headers: str) -> bytes:
    return (
        "From: MAILER-DAEMON@mx.example.com\r\nTo: help@acme.test\r\nReturn-Path: <>\r\n"
        "Message-ID: <dsn-1@mx.example.com>\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you that your message could not be delivered.\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.com\r\n\r\n"
        "Final-Recipient: rfc822; zhang.wei@example.cn\r\nAction: failed\r\nStatus: 5.2.2\r\n"
        f"--b\r\nContent-Type: text/rfc822-headers\r\n\r\n{original_headers}\r\n--b--\r\n"
    ).encode()


async def _open_ticket(system):
    system.settings = system.settings.replace(secret_key=SECRET)
    raw, msgid = make_mail(subject="Broken kettle")
    await system.publish(raw)
    await system.drain()
    [ticket] = await system.tickets()
    return ticket, msgid


async def test_bounce_of_our_reply_attaches_to_its_ticket_as_a_delivery_failure(system):
    # Our reply (token Message-ID) bounced: the DSN joins ticket 1, marked, and opens nothing.
    ticket, _ = await _open_ticket(system)
    out = reply_tokens.issue(SECRET, system.tenant, ticket.id, SUPPORT)
    await system.publish(_dsn(f"From: {SUPPORT}\r\nTo: zhang.wei@example.cn\r\nMessage-ID: {out.message_id}"))
    await system.drain()
    assert [t.id for t in await system.tickets()] == [ticket.id]
    bounce = (await system.messages())[-1]
    assert (bounce.ticket_id, bounce.auto_reason, bounce.sender) == (ticket.id, "bounce", "mailer-daemon@mx.example.com")
    assert [e["type"] for e in await system.events()] == ["ticket.created"]


async def test_bounce_of_a_stored_message_finds_it_through_the_original_message_id(system):
    # The returned original is a mail stored on the ticket (say, a forward that bounced).
    ticket, msgid = await _open_ticket(system)
    await system.publish(_dsn(f"From: zhang.wei@example.cn\r\nMessage-ID: {msgid}"))
    await system.drain()
    bounce = (await system.messages())[-1]
    assert (bounce.ticket_id, bounce.auto_reason) == (ticket.id, "bounce")
    assert len(await system.tickets()) == 1


async def test_out_of_office_to_a_solved_ticket_is_kept_without_reopening(system):
    ticket, msgid = await _open_ticket(system)
    async with system.db.write() as conn:
        await conn.execute(update(tickets).values(status="solved", closed_at=now_ms()))
    ooo, _ = make_mail(subject="Automatic reply: Broken kettle", refs=[msgid],
                       headers={"X-Auto-Response-Suppress": "All", "Auto-Submitted": "auto-replied"})
    await system.publish(ooo)
    await system.drain()
    [after] = await system.tickets()
    assert (after.status, (await system.messages())[-1].ticket_id) == ("solved", ticket.id)


async def test_our_own_outbound_mail_coming_back_is_a_loop_not_a_ticket(system):
    # A forwarding rule sends our reply back into the support mailbox.
    ticket, _ = await _open_ticket(system)
    out = reply_tokens.issue(SECRET, system.tenant, ticket.id, SUPPORT)
    looped, _ = make_mail(subject="Re: Broken kettle", sender=SUPPORT, msgid=out.message_id)
    await system.publish(looped)
    await system.drain()
    assert len(await system.tickets()) == 1
    assert (await system.messages())[-1].auto_reason == "own-message-id"
