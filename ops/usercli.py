"""``switchboard user add|disable|enable`` (console sign-ins) and ``switchboard tenant set`` (tenant settings)."""

from __future__ import annotations

import argparse
import sys
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.engine import Row

from console.auth import end_sessions, hash_password
from core.ids import now_ms
from core.keys import TICKET_EVENTS
from ops.runtime import Runtime
from ticket_service import events
from ticket_service.store import admin, users
from ticket_service.store import agents as agents_store

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
    for action, what in (("disable", "stop a user signing in (sessions end at their next request) and being "
                                     "assigned tickets"),
                         ("enable", "let a disabled user sign in again (back offline)")):
        one = user.add_parser(action, help=what)
        one.add_argument("email")
        one.add_argument("--tenant", required=True)
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


async def set_enabled(rt: Runtime, args: argparse.Namespace) -> str:
    """``user disable|enable``: the agent's status ``disabled`` (or back to offline), announced
    to the routers as a status change (a disabled agent's tickets not started go back as on offline)."""
    email, disable = args.email.strip().lower(), args.action == "disable"
    async with rt.db.read() as conn:
        tenant = await admin.tenant_id(conn, args.tenant)

    def change(conn) -> Row:
        agent_id = users.id_by_email(conn, tenant, email)
        if agent_id is None:
            raise admin.NotFound(f"no user {email} in tenant {args.tenant}")
        return agents_store.set_disabled(conn, tenant, agent_id, disable, now_ms())

    before = await rt.db.run_write(change)
    if disable:  # again when already disabled: a run that stopped before this finishes it
        await end_sessions(rt.redis, before.id, rt.settings.console_session_s)
    if (before.status == agents_store.DISABLED) == disable:
        return f"user {email} of {args.tenant} is already {'disabled' if disable else 'enabled'}"
    status = agents_store.DISABLED if disable else "offline"
    await rt.bus.publish(TICKET_EVENTS, events.event_envelope(events.AGENT_CHANGED, str(tenant), "", "",
                                                              tenant_id=tenant, agent_id=before.id, status=status))
    return f"user {email} of {args.tenant} {'disabled' if disable else 'enabled (offline)'} (agent id {before.id})"


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
