"""``switchboard trigger …`` and ``switchboard automation …``: add, list, show, remove, move.

``if`` and ``then`` are JSON read from a file, or from stdin when given as ``-``; they are
checked as the API checks them (faults name their path, ``then[2].template``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sqlalchemy.engine import Connection

from core.ids import now_ms
from core.settings import Settings
from ops import admincli
from rules import definitions, field_actions
from ticket_service.store import admin
from ticket_service.store import triggers as store
from ticket_service.store.db import Database

KINDS = ("trigger", "automation")


def add_parsers(sub) -> None:
    for kind in KINDS:
        p = sub.add_parser(kind, help=f"{kind}s ({'on ticket events' if kind == 'trigger' else 'time-based'})")
        actions = p.add_subparsers(dest="action", required=True)
        add = actions.add_parser("add", help=f"add a {kind}")
        add.add_argument("name")
        add.add_argument("--tenant", required=True)
        if kind == "trigger":
            add.add_argument("--on", required=True, help="event types, comma separated, e.g. ticket.created")
        add.add_argument("--if", dest="conditions", metavar="FILE", help="conditions as JSON (- for stdin)")
        add.add_argument("--then", dest="actions", metavar="FILE", required=True, help="actions as JSON (- for stdin)")
        add.add_argument("--position", type=int, help="1 = first; default last")
        add.add_argument("--inactive", action="store_true", help="stored, not run")
        actions.add_parser("list", help=f"the {kind}s in order").add_argument("--tenant", required=True)
        for name, what in (("show", "one, as JSON"), ("remove", "delete one")):
            one = actions.add_parser(name, help=f"{kind}: {what}")
            one.add_argument("id", type=int)
            one.add_argument("--tenant", required=True)
        move = actions.add_parser("move", help=f"move a {kind} to a position (1 = first)")
        move.add_argument("id", type=int)
        move.add_argument("position", type=int)
        move.add_argument("--tenant", required=True)


def handles(args: argparse.Namespace) -> bool:
    return args.command in KINDS


def _json(source: str | None, what: str) -> object:
    if source is None:
        return None
    text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{what}: not JSON ({exc})") from None


def _body(args: argparse.Namespace) -> dict:
    if args.conditions == "-" and args.actions == "-":
        raise ValueError("only one of --if and --then can be read from stdin")
    body = {"name": args.name, "if": _json(args.conditions, "--if"), "then": _json(args.actions, "--then"),
            "position": args.position, "active": not args.inactive}
    if args.command == "trigger":
        body["on"] = [e.strip() for e in args.on.split(",") if e.strip()]
    return body


def _run(conn: Connection, tenant: int, args: argparse.Namespace, values: dict | None) -> object:
    kind, action = args.command, args.action
    if action == "add":
        field_actions.check(conn, tenant, values["actions"])
        item_id = store.add(conn, kind, tenant, now_ms(), definitions.LIMITS[kind], **values)
        return definitions.as_json(store.get(conn, kind, tenant, item_id), kind)
    if action == "list":
        return [definitions.as_json(r, kind) for r in store.listed(conn, kind, tenant)]
    if action == "move" and not store.move(conn, kind, tenant, args.id, max(args.position, 1), now_ms()):
        raise admin.NotFound(f"no {kind} {args.id}")
    if action == "remove":
        if not store.remove(conn, kind, tenant, args.id):
            raise admin.NotFound(f"no {kind} {args.id}")
        return {"removed": args.id}
    row = store.get(conn, kind, tenant, args.id)
    if row is None:
        raise admin.NotFound(f"no {kind} {args.id}")
    return definitions.as_json(row, kind)


def main(settings: Settings, args: argparse.Namespace) -> int:
    async def work(db: Database) -> object:
        values = definitions.definition(_body(args), args.command) if args.action == "add" else None
        return await db.run_write(_run, await admincli.tenant(db, args.tenant), args, values)

    return admincli.run(settings, work)
