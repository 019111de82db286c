"""``switchboard user add`` (console sign-ins) and ``switchboard tenant set`` (tenant settings)."""

from __future__ import annotations

import argparse
import sys
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from console.auth import hash_password
from ops.runtime import Runtime
from ticket_service.store import admin, users

# Tenant settings this command sets, each with its check.
TENANT_SETTINGS = {"timezone": "IANA time zone the console shows dates in, e.g. Asia/Shanghai (default UTC)"}


def add_parsers(sub, tenant) -> None:
    user = sub.add_parser("user", help="console users (the tenant's agents)").add_subparsers(dest="action",
                                                                                            required=True)
    add = user.add_parser("add", help="create an agent who signs in to the console, or set the role and "
                          "password of the existing one")
    add.add_argument("email")
    add.add_argument("--tenant", required=True)
    add.add_argument("--role", choices=users.ROLES, required=True)
    add.add_argument("--password-stdin", action="store_true", required=True,
                     help="read the password from stdin (never from the command line)")
    add.add_argument("--name", default="", help="shown to colleagues; default the email's local part")
    names = ", ".join(f"{k} ({v})" for k, v in TENANT_SETTINGS.items())
    setter = tenant.add_parser("set", help=f"change a tenant's settings: {names}")
    setter.add_argument("slug")
    setter.add_argument("pairs", nargs="+", metavar="KEY=VALUE", help="e.g. timezone=Asia/Shanghai")


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"timezone {value!r} is not an IANA time zone such as Asia/Shanghai") from None
    return value


async def add_user(rt: Runtime, args: argparse.Namespace) -> str:
    password = sys.stdin.readline().rstrip("\r\n")
    email = args.email.strip().lower()
    if "@" not in email or len(email) > 320:
        raise ValueError(f"{args.email!r} is not an email address")
    hashed = hash_password(password)
    async with rt.db.read() as conn:
        tenant = await admin.tenant_id(conn, args.tenant)
    agent_id, created = await rt.db.run_write(users.set_user, tenant, email, args.role, hashed, args.name.strip())
    done = "created" if created else "updated (role and password)"
    return f"user {email} of {args.tenant} {done}: {args.role} (agent id {agent_id})"


async def set_tenant(rt: Runtime, args: argparse.Namespace) -> str:
    values = {}
    for pair in args.pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in TENANT_SETTINGS:
            raise ValueError(f"{pair!r}: settable are {', '.join(f'{k}=…' for k in TENANT_SETTINGS)}")
        values[key] = _timezone(value.strip())
    for key, value in values.items():
        await rt.db.run_write(users.set_tenant_setting, args.slug, key, value)
    return f"tenant {args.slug}: " + ", ".join(f"{k}={v}" for k, v in values.items())
