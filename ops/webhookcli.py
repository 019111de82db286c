"""``switchboard webhook add|list|remove|deliveries|replay|allow-private``: webhooks out from
the command line, with the API's checks and answers (docs/webhooks.md)."""

from __future__ import annotations

import argparse
import secrets
from collections.abc import Callable

from core.credentials import seal
from core.ids import now_ms
from core.settings import Settings
from ops import admincli
from ticket_service.api.webhooks import SECRET_PREFIX, delivery_json, event_types, webhook_json
from ticket_service.store import admin, deliveries
from ticket_service.store import webhooks as store
from ticket_service.store.db import Database
from ticket_service.webhook_url import TargetError, check_target


def add_parsers(sub) -> None:
    webhook = sub.add_parser("webhook", help="webhooks out (docs/webhooks.md)").add_subparsers(
        dest="action", required=True)
    add = webhook.add_parser("add", help="add a webhook; prints it with its signing secret (shown once)")
    add.add_argument("url")
    add.add_argument("--tenant", required=True)
    add.add_argument("--events", default="*", help='comma separated event types, or "*" (default)')
    add.add_argument("--secret", help="signing secret (default: generated)")
    webhook.add_parser("list", help="the tenant's webhooks").add_argument("--tenant", required=True)
    remove = webhook.add_parser("remove", help="delete a webhook and its deliveries")
    remove.add_argument("id", type=int)
    remove.add_argument("--tenant", required=True)
    listing = webhook.add_parser("deliveries", help="a webhook's deliveries, newest first")
    listing.add_argument("id", type=int)
    listing.add_argument("--tenant", required=True)
    listing.add_argument("--status", choices=deliveries.STATUSES)
    listing.add_argument("--limit", type=int, default=50)
    replay = webhook.add_parser("replay", help="attempt a delivery again now (also a delivered or dead one)")
    replay.add_argument("id", type=int, help="the webhook")
    replay.add_argument("delivery", type=int)
    replay.add_argument("--tenant", required=True)
    private = webhook.add_parser("allow-private", help="whether the tenant's webhooks may reach private, "
                                 "loopback and link-local addresses (default no)")
    private.add_argument("allowed", choices=["yes", "no"])
    private.add_argument("--tenant", required=True)


def handles(args: argparse.Namespace) -> bool:
    return args.command == "webhook"


async def _add(db: Database, tenant: int, args: argparse.Namespace, secret_key: Callable[[], str]) -> dict:
    events = event_types([e.strip() for e in args.events.split(",") if e.strip()])
    secret = args.secret or SECRET_PREFIX + secrets.token_urlsafe(32)
    if len(secret) < 16:
        raise ValueError("--secret must be at least 16 characters")
    allowed = await db.run_read(store.allows_private, tenant)
    try:
        await check_target(args.url, allowed)
    except TargetError as exc:
        raise ValueError(f"url {exc}") from None
    webhook_id = await db.run_write(store.create, tenant, args.url, events, seal(secret_key(), secret), now_ms())
    return webhook_json(await db.run_read(store.get, tenant, webhook_id)) | {"secret": secret}


async def _run(db: Database, args: argparse.Namespace, secret_key: Callable[[], str]) -> object:
    async with db.read() as conn:
        tenant = await admin.tenant_id(conn, args.tenant)
    if args.action == "add":
        return await _add(db, tenant, args, secret_key)
    if args.action == "list":
        return [webhook_json(r) for r in await db.run_read(store.listing, tenant)]
    if args.action == "allow-private":
        await db.run_write(store.set_allows_private, tenant, args.allowed == "yes")
        return {"tenant": args.tenant, "webhooks_allow_private": args.allowed == "yes"}
    if await db.run_read(store.get, tenant, args.id) is None:
        raise admin.NotFound(f"no webhook {args.id} of tenant {args.tenant!r}")
    if args.action == "remove":
        await db.run_write(store.remove, tenant, args.id)
        return {"removed": args.id}
    if args.action == "deliveries":
        rows = await db.run_read(deliveries.listing, tenant, args.id, args.status, None, max(1, args.limit))
        return [delivery_json(r) for r in rows]
    row = await db.run_write(deliveries.replay, tenant, args.id, args.delivery, now_ms())
    if row is None:
        raise admin.NotFound(f"no delivery {args.delivery} of webhook {args.id}")
    return delivery_json(row)


def main(settings: Settings, args: argparse.Namespace, secret_key: Callable[[], str]) -> int:
    """``secret_key``: the key this data folder's processes seal secrets with (made on first use)."""
    return admincli.run(settings, lambda db: _run(db, args, secret_key))
