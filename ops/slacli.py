"""``switchboard calendar add|list|show|remove`` and ``switchboard sla add|list|show|remove``.

``add`` reads the same JSON document as the API from a file, or stdin with ``-``; it
replaces a calendar or policy of that name with ``--replace``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.ids import now_ms
from core.settings import Settings
from ops import admincli
from rules import sla_api
from ticket_service.store import admin
from ticket_service.store.db import Database

_WHAT = {"calendar": "business calendars", "sla": "SLA policies"}
_ACTIONS = {
    ("calendar", "list"): sla_api.list_calendars,
    ("calendar", "show"): sla_api.show_calendar,
    ("calendar", "remove"): sla_api.remove_calendar,
    ("sla", "list"): sla_api.list_policies,
    ("sla", "show"): sla_api.show_policy,
    ("sla", "remove"): sla_api.remove_policy,
}


def add_parsers(sub) -> None:
    for command, what in _WHAT.items():
        actions = sub.add_parser(command, help=what).add_subparsers(dest="action", required=True)
        add = actions.add_parser("add", help=f"add one of the tenant's {what} from a JSON document")
        add.add_argument("file", help="the JSON document (as the API takes it), - for stdin")
        add.add_argument("--replace", action="store_true", help="replace the one of that name")
        actions.add_parser("list", help=f"the tenant's {what}").add_argument("--tenant", required=True)
        for action in ("show", "remove"):
            one = actions.add_parser(action, help=f"{action} one by name")
            one.add_argument("name")
            one.add_argument("--tenant", required=True)
        add.add_argument("--tenant", required=True)


def handles(args: argparse.Namespace) -> bool:
    return args.command in _WHAT


def _read(path: str) -> object:
    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from None


def _add(conn, tenant: int, args: argparse.Namespace, doc: object) -> dict:
    if args.command == "calendar":
        if args.replace and isinstance(doc, dict):
            return sla_api.replace_calendar(conn, tenant, str(doc.get("name")), doc, now_ms())
        return sla_api.add_calendar(conn, tenant, doc, now_ms())
    if args.replace and isinstance(doc, dict):
        return sla_api.replace_policy(conn, tenant, str(doc.get("name")), doc, now_ms())
    return sla_api.add_policy(conn, tenant, doc, now_ms())


async def _run(db: Database, args: argparse.Namespace) -> object:
    async with db.read() as conn:
        tenant = await admin.tenant_id(conn, args.tenant)
    if args.action == "add":
        return await db.run_write(_add, tenant, args, _read(args.file))
    fn = _ACTIONS[(args.command, args.action)]
    extra = () if args.action == "list" else (args.name,)
    if args.action == "remove":
        await db.run_write(fn, tenant, *extra)
        return {"removed": args.name}
    return await db.run_read(fn, tenant, *extra)


def main(settings: Settings, args: argparse.Namespace) -> int:
    return admincli.run(settings, lambda db: _run(db, args))
