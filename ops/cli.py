"""``switchboard``: run a role, or administer tenants, accounts and API keys."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable

import uvloop

from connectors.registry import CHANNELS
from core import gctune
from core import logging as sblogging
from core.credentials import CredentialError, seal
from core.ids import now_ms
from core.settings import Settings, SettingsError, load
from ops import (
    fieldcli,
    opscli,
    roles,
    routingcli,
    rulescli,
    slacli,
    ticketcli,
    usercli,
    webhookcli,
)
from ops.runtime import Runtime
from ticket_service.store import account_settings, admin, mailboxes
from ticket_service.store.replies import Draft, ReplyError, store_reply

RoleMain = Callable[[Runtime, asyncio.Event], Awaitable[None]]

ROLES: dict[str, tuple[str, RoleMain]] = {
    "run": ("every role in one process (single machine)", roles.run_all),
    "smtp": ("inbound SMTP server", roles.with_ops_port(roles.smtp_server)),
    "normalizer": ("normalizer worker", roles.with_ops_port(roles.normalizer)),
    "router": ("router worker (assigns tickets; `router explain TICKET`)", roles.with_ops_port(roles.router)),
    "sender": ("sender worker (sends replies from outbound.<channel>, relays the outbox)",
               roles.with_ops_port(roles.sender)),
    "rules": ("rules worker (triggers, automations, SLA clocks, webhooks on ticket.events)",
              roles.with_ops_port(roles.rules)),
    "connector": ("a channel connector in its own process: `connector imap` fetches IMAP mailboxes",
                  roles.with_ops_port(roles.imap_poller)),
    "api": ("REST API server", lambda rt, stop: roles.http_server(rt, stop, api=True, gateway=False)),
    "gateway": ("push-channel HTTP gateway", lambda rt, stop: roles.http_server(rt, stop, api=False, gateway=True)),
}


async def _serve(settings: Settings, role: str, drain: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with Runtime(settings) as rt:
        gctune.settle()
        if drain:
            await roles.normalizer(rt, stop, drain=True)
        else:
            await ROLES[role][1](rt, stop)


async def _admin(settings: Settings, args: argparse.Namespace) -> str:
    async with Runtime(settings) as rt:
        if args.command == "migrate":
            return "schema is current"
        if args.command == "ticket" and args.action == "reply":
            return await _reply(rt, _secret_key(settings), args)
        if args.command == "user":
            return await (usercli.add_user if args.action == "add" else usercli.set_enabled)(rt, args)
        if args.command == "tenant" and args.action == "set":
            return await usercli.set_tenant(rt, args)
        async with rt.db.write() as conn:
            if args.command == "tenant":
                return f"tenant {args.slug} created (id {await admin.create_tenant(conn, args.slug, args.name)})"
            tenant = await admin.tenant_id(conn, args.tenant) if getattr(args, "tenant", None) else None
            if args.command == "ticket" and args.action == "revoke-link":
                return await ticketcli.revoke_link(conn, tenant, args.number)
            if args.command == "account" and args.action == "imap":
                return await _imap_account(_secret_key(settings), conn, tenant, args)
            if args.command == "account" and args.action == "set":
                return await _set_account(conn, args)
            if args.command == "account":
                channel, values = CHANNELS[args.channel], _settings(args.setting)
                sealed = channel.account_secrets and admin.SECRET_SETTINGS & set(values)
                key = _secret_key(settings) if sealed else ""
                account = await admin.add_account(conn, tenant, channel.name, channel.account_address(args.address),
                                                  values, secret_key=key)
                return f"{args.channel} account {args.address} added (id {account})"
            if args.command == "apikey":
                return await admin.create_api_key(conn, tenant, args.name)
    raise AssertionError(args.command)


async def _reply(rt: Runtime, secret_key: str, args: argparse.Namespace) -> str:
    """Store a reply (queued for the sender) or a note on a ticket, as the API does."""
    async with rt.db.read() as conn:
        tenant = await admin.tenant_id(conn, args.tenant)
    draft = Draft(kind="note" if args.note else "reply", text=args.text, channel=args.channel or "")
    if not draft.text.strip():
        raise ValueError("--text must not be empty")
    try:
        message_id, _ = await rt.db.run_write(store_reply, tenant, args.id, draft, secret_key, now_ms())
    except ReplyError as exc:
        raise ValueError(exc.message) from None
    return f"{draft.kind} {message_id} stored on ticket {args.id}" + ("" if args.note else ", queued for sending")


def _add_reply_parser(ticket) -> None:
    reply = ticket.add_parser("reply", help="answer a ticket on the customer's channel (or --note: internal)")
    reply.add_argument("id", type=int, help="the ticket id")
    reply.add_argument("--tenant", required=True)
    reply.add_argument("--text", required=True)
    reply.add_argument("--channel", help="default: the channel of the customer's last message")
    reply.add_argument("--note", action="store_true", help="an internal note, never sent")


def _add_imap_parser(account) -> None:
    imap = account.add_parser("imap", help="fetch an email address's mailbox over IMAP (password stored encrypted)")
    imap.add_argument("address", help="the support address; registered for the tenant if new")
    imap.add_argument("--tenant", required=True)
    imap.add_argument("--host", required=True)
    imap.add_argument("--port", type=int, help="default 993 (ssl), 143 (starttls or none)")
    imap.add_argument("--user", required=True)
    secret = imap.add_mutually_exclusive_group(required=True)
    secret.add_argument("--password", help="visible to other local users; prefer --password-stdin")
    secret.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    imap.add_argument("--folder", default="INBOX")
    imap.add_argument("--security", choices=mailboxes.SECURITY,
                      help="default ssl on port 993, starttls on any other; none only when asked for")
    imap.add_argument("--no-tls-verify", action="store_true",
                      help="accept the server's certificate unchecked (self-signed): encrypted, not authenticated")
    imap.add_argument("--after", default="leave", metavar="leave|seen|move:FOLDER",
                      help="what to do with a message once it is on the stream")
    imap.add_argument("--start", choices=mailboxes.START, default="all",
                      help="all: also take in what the folder holds now; new: only later mail")


def _secret_key(settings: Settings) -> str:
    """The key the processes on this data folder use: SWITCHBOARD_SECRET_KEY, else the one
    ``switchboard run`` keeps in the data folder (made here the same way when absent)."""
    if settings.secret_key:
        return settings.secret_key
    try:
        return roles.local_secret(settings.data_dir)
    except OSError as exc:
        raise CredentialError(
            f"no secret key to seal credentials with: SWITCHBOARD_SECRET_KEY is not set and "
            f"{settings.data_dir / 'secret_key'} cannot be read or created ({exc.strerror}); "
            "secrets are never stored in the clear") from None


async def _imap_account(secret_key: str, conn, tenant: int, args: argparse.Namespace) -> str:
    password = sys.stdin.readline().rstrip("\r\n") if args.password_stdin else args.password
    after, _, move_to = args.after.partition(":")
    port = args.port or (993 if args.security in (None, "ssl") else 143)
    imap = mailboxes.imap_settings(args.host, port, args.user, args.folder, args.security, after, move_to,
                                   args.start, tls_verify=not args.no_tls_verify)
    account = await mailboxes.set_imap(conn, tenant, args.address, imap, seal(secret_key, password))
    return f"email account {args.address} fetches {args.user}@{args.host}:{port}/{args.folder} (id {account})"


def _add_set_parser(account) -> None:
    names = ", ".join(f"{k} ({s.help})" for k, s in account_settings.SETTABLE.items())
    c = account.add_parser("set", help=f"change an account's settings: {names}")
    c.add_argument("address", help="the account's address (a mailbox for email)")
    c.add_argument("pairs", nargs="+", metavar="KEY=VALUE", help="e.g. auto_mail=ticket|attach|drop")
    c.add_argument("--channel", default="email", help="the account's channel (default email)")
    c.add_argument("--tenant", help="refuse unless the account belongs to this tenant")


async def _set_account(conn, args: argparse.Namespace) -> str:
    values = {}
    for pair in args.pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"{pair!r} is not KEY=VALUE")
        values[key] = value
    stored = await account_settings.set_settings(conn, args.channel, args.address, values, args.tenant)
    shown = ", ".join(f"{k}={v if isinstance(v := stored[k], str) else json.dumps(v, ensure_ascii=False)}"
                      for k in values)
    return f"{args.channel} account {args.address.strip().lower() if args.channel == 'email' else args.address}: {shown}"


def _settings(pairs: list[str]) -> dict:
    """``KEY=VALUE`` pairs -> a settings dict; a VALUE that parses as JSON is taken as JSON."""
    settings = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"switchboard: --setting {pair!r} is not KEY=VALUE")
        try:
            settings[key] = json.loads(value)
        except ValueError:
            settings[key] = value
    return settings


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="switchboard", description=__doc__)
    p.add_argument("--config", help="TOML settings file (also SWITCHBOARD_CONFIG)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, _) in ROLES.items():
        role = sub.add_parser(name, help=help_text)
        if name == "normalizer":
            role.add_argument("--drain", action="store_true", help="exit once the streams are empty")
        if name == "router":
            routingcli.add_role_commands(role)
        if name == "connector":
            role.add_argument("kind", choices=["imap"], help="which connector")
    opscli.add_parser(sub, list(ROLES))
    routingcli.add_parsers(sub)
    fieldcli.add_parsers(sub)
    rulescli.add_parsers(sub)
    slacli.add_parsers(sub)
    webhookcli.add_parsers(sub)
    _add_reply_parser(ticketcli.add_parser(sub))
    sub.add_parser("migrate", help="bring the database schema up to date")
    tenant = sub.add_parser("tenant", help="tenants").add_subparsers(dest="action", required=True)
    create = tenant.add_parser("create", help="create a tenant")
    create.add_argument("slug")
    create.add_argument("--name", default="")
    usercli.add_parsers(sub, tenant)
    account = sub.add_parser("account", help="channel accounts").add_subparsers(dest="action", required=True)
    add = account.add_parser("add", help="register an address a channel receives on")
    add.add_argument("channel", choices=list(CHANNELS))
    add.add_argument("address", help="mailbox, or the {account}/{form}/{app} key of the push URL")
    add.add_argument("--tenant", required=True)
    add.add_argument("--setting", action="append", default=[], metavar="KEY=VALUE",
                     help="account setting (repeatable); VALUE is JSON when it parses, else text, "
                     "e.g. token=abc mode=safe 'cors_origins=[\"https://shop.example\"]'; a wechat "
                     "account is mode=safe unless mode=compatible or mode=plaintext is given")
    _add_imap_parser(account)
    _add_set_parser(account)
    apikey = sub.add_parser("apikey", help="API keys").add_subparsers(dest="action", required=True)
    key = apikey.add_parser("create", help="create an API key and print it (shown once)")
    key.add_argument("--tenant", required=True)
    key.add_argument("--name", default="cli")
    return p


def main(argv: list[str] | None = None) -> int:
    # Files this process creates (data folder, database, blobs, keys) are its owner's alone.
    os.umask(0o077)
    args = parser().parse_args(argv)
    try:
        settings = load(path=args.config)
    except (SettingsError, OSError) as exc:
        print(f"switchboard: {exc}", file=sys.stderr)
        return 2
    sblogging.configure(settings.log_level, settings.log_format, role=args.command)
    if args.command == "ops":
        return opscli.main(settings, args)
    if routingcli.handles(args):
        return routingcli.main(settings, args)
    if fieldcli.handles(args):
        return fieldcli.main(settings, args)
    if rulescli.handles(args):
        return rulescli.main(settings, args)
    if slacli.handles(args):
        return slacli.main(settings, args)
    if webhookcli.handles(args):
        return webhookcli.main(settings, args, lambda: _secret_key(settings))
    if args.command == "ticket" and args.action == "explain":
        return ticketcli.main(settings, args)
    if args.command in ROLES:
        # libuv's loop: cheaper socket wakeups for every role (HTTP, SMTP, Redis, the DB thread).
        try:
            uvloop.run(_serve(settings, args.command, getattr(args, "drain", False)))
        except SettingsError as exc:  # e.g. a TLS certificate that cannot be loaded
            print(f"switchboard: {exc}", file=sys.stderr)
            return 2
        return 0
    try:
        print(asyncio.run(_admin(settings, args)))
    except (admin.NotFound, CredentialError, ValueError) as exc:
        print(f"switchboard: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
