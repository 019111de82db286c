"""``switchboard agent …``, ``switchboard rule …`` and ``switchboard router explain TICKET``."""

from __future__ import annotations

import argparse

from sqlalchemy.engine import Connection

from core.ids import now_ms
from core.settings import Settings
from ops import admincli
from router.policy import STATUSES
from ticket_service.api.routing import agent_json, routing_trail, rule_fields, rule_json
from ticket_service.store import admin
from ticket_service.store import agents as agents_store
from ticket_service.store import customers as customers_store
from ticket_service.store import rules as rules_store
from ticket_service.store import tickets as tickets_store
from ticket_service.store.db import Database


def _levels(text: str) -> dict[str, int]:
    """``refunds=3,chinese=5`` -> {"refunds": 3, "chinese": 5}."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, level = part.partition("=")
        try:
            out[name.strip()] = int(level or 1)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part!r} is not name=level") from None
    return out


def _list(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def add_role_commands(role: argparse.ArgumentParser) -> None:
    sub = role.add_subparsers(dest="action", metavar="ACTION")
    explain = sub.add_parser("explain", help="why a ticket went where it went")
    explain.add_argument("ticket", type=int, help="ticket id, or its number with --tenant")
    explain.add_argument("--tenant", help="tenant slug; TICKET is then the ticket number")
    explain.add_argument("--json", action="store_true", help="the same JSON as the API")


def add_parsers(sub) -> None:
    agent = sub.add_parser("agent", help="agents").add_subparsers(dest="action", required=True)
    add = agent.add_parser("add", help="add an agent")
    add.add_argument("name")
    add.add_argument("email")
    add.add_argument("--tenant", required=True)
    add.add_argument("--skills", type=_levels, default={}, help="e.g. refunds=3,chinese=5")
    add.add_argument("--tier", type=int, default=0)
    add.add_argument("--capacity", type=_levels, default={"email": 5, "chat": 3, "voice": 1},
                     help="per channel class, e.g. email=5,chat=3,voice=1")
    add.add_argument("--status", choices=STATUSES, default="offline")
    agent.add_parser("list", help="list agents").add_argument("--tenant", required=True)
    status = agent.add_parser("status", help="set an agent's status (the API also tells the router)")
    status.add_argument("agent", type=int)
    status.add_argument("status", choices=STATUSES)
    status.add_argument("--tenant", required=True)

    customer = sub.add_parser("customer", help="customers").add_subparsers(dest="action", required=True)
    vip = customer.add_parser("vip", help="set the VIP tier of the customer behind an email address")
    vip.add_argument("email")
    vip.add_argument("tier", type=int)
    vip.add_argument("--tenant", required=True)

    rule = sub.add_parser("rule", help="routing rules").add_subparsers(dest="action", required=True)
    radd = rule.add_parser("add", help="add a routing rule (first match wins)")
    radd.add_argument("name")
    radd.add_argument("--tenant", required=True)
    radd.add_argument("--position", type=int, help="1 = first; default last")
    for name in ("channels", "accounts", "tags", "languages", "keywords"):
        radd.add_argument(f"--{name}", type=_list, default=[], help="comma separated")
    radd.add_argument("--min-customer-tier", type=int, default=0)
    radd.add_argument("--require", type=_levels, default={}, help="required skills, e.g. chinese=3")
    radd.add_argument("--prefer", type=_levels, default={}, help="preferred skills")
    radd.add_argument("--priority", type=int, default=0)
    radd.add_argument("--min-tier", type=int, default=0)
    radd.add_argument("--escalate-after", type=int, help="seconds waiting before the target widens")
    radd.add_argument("--widen-require", type=_levels, help="required skills once escalated")
    radd.add_argument("--widen-min-tier", type=int, help="minimum agent tier once escalated")
    rule.add_parser("list", help="the rule table in order").add_argument("--tenant", required=True)
    rdel = rule.add_parser("delete", help="delete a rule")
    rdel.add_argument("rule", type=int)
    rdel.add_argument("--tenant", required=True)


def handles(args: argparse.Namespace) -> bool:
    return args.command in ("agent", "rule", "customer") or (args.command == "router" and bool(getattr(args, "action", None)))


def _rule_body(args: argparse.Namespace) -> dict:
    match = {n: getattr(args, n) for n in ("channels", "tags", "languages", "keywords") if getattr(args, n)}
    if args.accounts:
        match["accounts"] = [int(a) for a in args.accounts]
    if args.min_customer_tier:
        match["min_customer_tier"] = args.min_customer_tier
    widen = {}
    if args.widen_require is not None:
        widen["required"] = args.widen_require
    if args.widen_min_tier is not None:
        widen["min_tier"] = args.widen_min_tier
    body = {"name": args.name, "match": match, "required": args.require, "preferred": args.prefer,
            "priority": args.priority, "min_tier": args.min_tier, "widen": widen,
            "escalate_after_s": args.escalate_after, "position": args.position}
    return {k: v for k, v in body.items() if v is not None}


def _explain(conn: Connection, tenant: int | None, ticket: int) -> dict:
    ticket_id = ticket if tenant is None else tickets_store.ticket_id_by_number(conn, tenant, ticket)
    row = tickets_store.ticket_for_routing(conn, ticket_id or 0)
    if row is None:
        raise admin.NotFound(f"no ticket {ticket}")
    return routing_trail(conn, row.tenant_id, row.id)


def _add_agent(conn: Connection, tenant: int, args: argparse.Namespace) -> dict:
    agent_id = agents_store.create_agent(conn, tenant, args.name, args.email, status=args.status, tier=args.tier,
                                         skills=args.skills, capacity=args.capacity)
    return agent_json(agents_store.get_agent(conn, tenant, agent_id))


def _agent_status(conn: Connection, tenant: int, args: argparse.Namespace) -> dict:
    if agents_store.set_agent_status(conn, tenant, args.agent, args.status, now_ms()) is None:
        raise admin.NotFound(f"no agent {args.agent}")
    return agent_json(agents_store.get_agent(conn, tenant, args.agent))


def _customer_vip(conn: Connection, tenant: int, args: argparse.Namespace) -> dict:
    email = args.email.lower()
    customer = tickets_store.resolve_customer(conn, tenant, "email", "", email, "", now_ms())
    customers_store.set_vip_tier(conn, customer.id, args.tier)
    return {"customer_id": customer.id, "email": email, "vip_tier": args.tier}


def _add_rule(conn: Connection, tenant: int, args: argparse.Namespace) -> dict:
    rule_id = rules_store.add_rule(conn, tenant, now_ms(), **rule_fields(_rule_body(args)))
    return next(rule_json(r) for r in rules_store.list_rules(conn, tenant) if r.id == rule_id)


def _delete_rule(conn: Connection, tenant: int, args: argparse.Namespace) -> dict:
    if not rules_store.delete_rule(conn, tenant, args.rule):
        raise admin.NotFound(f"no rule {args.rule}")
    return {"deleted": args.rule}


_ACTIONS = {
    ("agent", "add"): _add_agent,
    ("agent", "list"): lambda conn, tenant, _: [agent_json(r) for r in agents_store.list_agents(conn, tenant)],
    ("agent", "status"): _agent_status,
    ("customer", "vip"): _customer_vip,
    ("rule", "add"): _add_rule,
    ("rule", "list"): lambda conn, tenant, _: [rule_json(r) for r in rules_store.list_rules(conn, tenant)],
    ("rule", "delete"): _delete_rule,
}


async def _run(db: Database, args: argparse.Namespace) -> object:
    tenant = None
    if getattr(args, "tenant", None):
        async with db.read() as conn:
            tenant = await admin.tenant_id(conn, args.tenant)
    if args.command == "router":
        return await db.run_read(_explain, tenant, args.ticket)
    return await db.run_write(_ACTIONS[(args.command, args.action)], tenant, args)


def explain_text(trail: dict) -> str:
    """A routing trail for people: one block per decision."""
    lines = [f"ticket {trail['ticket_id']} (#{trail['number']}) {trail['status']}, language "
             f"{trail['language'] or '?'}, customer VIP tier {trail['customer_vip_tier']}, assignee "
             f"{trail['assignee_id'] or '-'}" + (", waiting" if trail["waiting"] else "")]
    for d in trail["decisions"]:
        head = f"{d['at']}  {d['outcome']}"
        if d.get("agent_id"):
            head += f" -> agent {d['agent_id']}"
        lines.append(head + f"  (via {d.get('via', '-')}, {d['elapsed_us']} µs)")
        for r in d.get("rules", []):
            if "rules_not_listed" in r:
                lines.append(f"  ... {r['rules_not_listed']} more rules missed")
            else:
                lines.append(f"  rule {r['rule']!r}: " + ("hit" if r["hit"] else "; ".join(r["misses"])))
        if req := d.get("requirements"):
            lines.append(f"  needs skills {req['required'] or '-'}, prefers {req['preferred'] or '-'}, "
                         f"tier >= {req['min_tier']}, stage {req['stage']}")
        for c in d.get("candidates", []):
            lines.append(f"  candidate {c['agent']} ({c['agent_id']}): {c['score']}")
        for x in d.get("excluded", []):
            lines.append(f"  excluded  {x['agent']} ({x['agent_id']}): {'; '.join(x['reasons'])}")
        if d.get("claim", {}).get("lost_race"):
            lines.append(f"  lost races on agents {d['claim']['lost_race']}")
    return "\n".join(lines)


def main(settings: Settings, args: argparse.Namespace) -> int:
    text = args.command == "router" and not args.json
    return admincli.run(settings, lambda db: _run(db, args), explain_text if text else None)
