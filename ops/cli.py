"""``switchboard``: run a role, or administer tenants, accounts and API keys."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable

from core import logging as sblogging
from core.settings import Settings, SettingsError, load
from ops import opscli, roles
from ops.runtime import Runtime
from router import cli as routercli
from ticket_service.store import admin

RoleMain = Callable[[Runtime, asyncio.Event], Awaitable[None]]

ROLES: dict[str, tuple[str, RoleMain]] = {
    "run": ("every role in one process (single machine)", roles.run_all),
    "smtp": ("inbound SMTP server", roles.with_ops_port(roles.smtp_server)),
    "normalizer": ("normalizer worker", roles.with_ops_port(roles.normalizer)),
    "router": ("router worker (assigns tickets; `router explain TICKET`)", roles.with_ops_port(roles.router)),
    "api": ("REST API server", lambda rt, stop: roles.http_server(rt, stop, api=True, gateway=False)),
    "gateway": ("push-channel HTTP gateway", lambda rt, stop: roles.http_server(rt, stop, api=False, gateway=True)),
}


async def _serve(settings: Settings, role: str, drain: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with Runtime(settings) as rt:
        if drain:
            await roles.normalizer(rt, stop, drain=True)
        else:
            await ROLES[role][1](rt, stop)


async def _admin(settings: Settings, args: argparse.Namespace) -> str:
    async with Runtime(settings) as rt:
        if args.command == "migrate":
            return "schema is current"
        async with rt.db.write() as conn:
            if args.command == "tenant":
                return f"tenant {args.slug} created (id {await admin.create_tenant(conn, args.slug, args.name)})"
            tenant = await admin.tenant_id(conn, args.tenant)
            if args.command == "account":
                account = await admin.add_account(conn, tenant, args.channel, args.address)
                return f"{args.channel} account {args.address} added (id {account})"
            if args.command == "apikey":
                return await admin.create_api_key(conn, tenant, args.name)
    raise AssertionError(args.command)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="switchboard", description=__doc__)
    p.add_argument("--config", help="TOML settings file (also SWITCHBOARD_CONFIG)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, _) in ROLES.items():
        role = sub.add_parser(name, help=help_text)
        if name == "normalizer":
            role.add_argument("--drain", action="store_true", help="exit once the streams are empty")
        if name == "router":
            routercli.add_role_commands(role)
    opscli.add_parser(sub, list(ROLES))
    routercli.add_parsers(sub)
    sub.add_parser("migrate", help="bring the database schema up to date")
    tenant = sub.add_parser("tenant", help="tenants").add_subparsers(dest="action", required=True)
    create = tenant.add_parser("create", help="create a tenant")
    create.add_argument("slug")
    create.add_argument("--name", default="")
    account = sub.add_parser("account", help="channel accounts").add_subparsers(dest="action", required=True)
    add = account.add_parser("add", help="register an address a channel receives on")
    add.add_argument("channel", choices=["email"])
    add.add_argument("address")
    add.add_argument("--tenant", required=True)
    apikey = sub.add_parser("apikey", help="API keys").add_subparsers(dest="action", required=True)
    key = apikey.add_parser("create", help="create an API key and print it (shown once)")
    key.add_argument("--tenant", required=True)
    key.add_argument("--name", default="cli")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = load(path=args.config)
    except (SettingsError, OSError) as exc:
        print(f"switchboard: {exc}", file=sys.stderr)
        return 2
    sblogging.configure(settings.log_level, settings.log_format, role=args.command)
    if args.command == "ops":
        return opscli.main(settings, args)
    if routercli.handles(args):
        return routercli.main(settings, args)
    if args.command in ROLES:
        asyncio.run(_serve(settings, args.command, getattr(args, "drain", False)))
        return 0
    try:
        print(asyncio.run(_admin(settings, args)))
    except admin.NotFound as exc:
        print(f"switchboard: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
