"""``switchboard ticket explain ID --tenant SLUG``: how each message was threaded, and routed."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from core.settings import Settings
from ops.routingcli import explain_text as routing_text
from ticket_service.api.routing import routing_trail
from ticket_service.api.tickets import iso_ms, threading_json
from ticket_service.store import admin, portal
from ticket_service.store.db import Database, migrate
from ticket_service.store.tables import messages, tickets


def add_parser(sub):
    """The ``ticket`` command with its ``explain`` action; returns its actions for others to join."""
    ticket = sub.add_parser("ticket", help="tickets").add_subparsers(dest="action", required=True)
    explain = ticket.add_parser("explain", help="how each message of a ticket was threaded, and how it was routed")
    explain.add_argument("ticket", type=int, help="ticket id (its number with --number)")
    explain.add_argument("--tenant", required=True, help="tenant slug")
    explain.add_argument("--number", action="store_true", help="TICKET is the ticket's number, not its id")
    explain.add_argument("--json", action="store_true", help="the ticket, each message's threading, the routing trail")
    revoke = ticket.add_parser("revoke-link", help="revoke every status-page link issued for a ticket so far")
    revoke.add_argument("number", type=int, help="the ticket's number")
    revoke.add_argument("--tenant", required=True, help="tenant slug")
    return ticket


async def revoke_link(conn: AsyncConnection, tenant_id: int, number: int) -> str:
    """Raise the ticket's link generation: the links customers hold open nothing any more."""
    ticket = await portal.ticket_by_number(conn, tenant_id, number)
    if ticket is None:
        raise admin.NotFound(f"no ticket number {number}")
    await portal.revoke(conn, tenant_id, ticket.id)
    return f"status-page links of ticket {number} revoked; new ones come with the next reply"


async def explanation(conn: AsyncConnection, tenant_id: int, ticket: int, by_number: bool = False) -> dict:
    """The ticket, each of its messages with its threading, and its routing trail."""
    key = tickets.c.number if by_number else tickets.c.id
    row = (await conn.execute(
        select(tickets.c.id, tickets.c.number, tickets.c.status, tickets.c.channel, tickets.c.subject)
        .where(tickets.c.tenant_id == tenant_id, key == ticket)
    )).first()
    if row is None:
        raise admin.NotFound(f"no ticket {'number ' if by_number else ''}{ticket}")
    msgs = (await conn.execute(
        select(messages.c.id, messages.c.direction, messages.c.sender, messages.c.subject, messages.c.created_at,
               messages.c.thread_rule, messages.c.thread_trail)
        .where(messages.c.tenant_id == tenant_id, messages.c.ticket_id == row.id)
        .order_by(messages.c.created_at, messages.c.id)
    )).all()
    return {
        "ticket_id": row.id, "number": row.number, "status": row.status, "channel": row.channel,
        "subject": row.subject,
        "messages": [{"id": m.id, "direction": m.direction, "sender": m.sender, "subject": m.subject,
                      "created_at": iso_ms(m.created_at), "threading": threading_json(m)} for m in msgs],
        "routing": await conn.run_sync(routing_trail, tenant_id, row.id),
    }


def explain_text(found: dict) -> str:
    """One block per message: who sent it, the rule that placed it, each rule's hit or miss."""
    lines = [f"ticket {found['ticket_id']} (#{found['number']}) {found['status']}, {found['channel']}: "
             f"{found['subject']}"]
    for m in found["messages"]:
        lines.append(f"message {m['id']}  {m['created_at']}  {m['direction']}  {m['sender'] or '-'}")
        threading = m["threading"]
        if threading is None:
            lines.append("  not threaded by the normalizer (written by an agent or a rule)")
            continue
        lines.append(f"  threaded by {threading['rule']}")
        for step in threading["trail"]:
            if step["rule"] == "placed":
                lines.append(f"  placed: {step['why']}")
            else:
                lines.append(f"  {step['rule']}: {'hit' if step['hit'] else 'miss'} ({step['why']})")
    if found["routing"] is not None:
        lines += ["", "routing:", routing_text(found["routing"])]
    return "\n".join(lines)


def main(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> dict:
        db = Database(settings.effective_database_url)
        try:
            await migrate(db)
            async with db.read() as conn:
                tenant = await admin.tenant_id(conn, args.tenant)
                return await explanation(conn, tenant, args.ticket, args.number)
        finally:
            await db.dispose()

    try:
        found = asyncio.run(run())
    except admin.NotFound as exc:
        print(f"switchboard: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(found, indent=2, ensure_ascii=False) if args.json else explain_text(found))
    return 0
