"""``switchboard field add|list|remove``: a tenant's custom ticket fields, as ``/api/v1/fields``."""

from __future__ import annotations

import argparse

from sqlalchemy.engine import Connection

from core.ids import now_ms
from core.settings import Settings
from ops import admincli
from ticket_service import field_schema
from ticket_service.store import admin
from ticket_service.store import fields as fields_store
from ticket_service.store.db import Database


def add_parsers(sub) -> None:
    field = sub.add_parser("field", help="custom ticket fields").add_subparsers(dest="action", required=True)
    add = field.add_parser("add", help="add a custom field (values are set with PATCH /api/v1/tickets/{id})")
    add.add_argument("name", help="a slug: a-z first, then a-z, 0-9 or _ (at most 40)")
    add.add_argument("type", choices=field_schema.TYPES)
    add.add_argument("--tenant", required=True)
    add.add_argument("--choices", help="choice and multi_choice: comma separated, e.g. web,shop,phone")
    add.add_argument("--required", action="store_true", help="must be set before a ticket is solved or closed")
    add.add_argument("--label", default="", help="what people see")
    field.add_parser("list", help="the tenant's fields").add_argument("--tenant", required=True)
    remove = field.add_parser("remove", help="remove a field and every ticket's value of it")
    remove.add_argument("name")
    remove.add_argument("--tenant", required=True)


def handles(args: argparse.Namespace) -> bool:
    return args.command == "field"


def _add(conn: Connection, tenant: int, args: argparse.Namespace) -> dict:
    body = {"name": args.name, "type": args.type, "label": args.label, "required": args.required}
    if args.choices is not None:
        body["choices"] = [c.strip() for c in args.choices.split(",")]
    field = field_schema.definition(body)
    fields_store.add_field(conn, tenant, field, now_ms())
    return field.to_json()


def _remove(conn: Connection, tenant: int, args: argparse.Namespace) -> dict:
    if not fields_store.remove_field(conn, tenant, args.name):
        raise admin.NotFound(f"no field {args.name!r}")
    return {"removed": args.name}


_ACTIONS = {
    "add": _add,
    "list": lambda conn, tenant, _: [f.to_json() for f in fields_store.definitions(conn, tenant).values()],
    "remove": _remove,
}


def main(settings: Settings, args: argparse.Namespace) -> int:
    async def work(db: Database) -> object:
        return await db.run_write(_ACTIONS[args.action], await admincli.tenant(db, args.tenant), args)

    return admincli.run(settings, work)
