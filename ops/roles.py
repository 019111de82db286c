"""Each role as a coroutine that runs until ``stop`` is set; ``run_all`` is every role at once."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
from pathlib import Path

import structlog
from aiohttp import web

from connectors.email import smtp
from connectors.email import tls as email_tls
from connectors.email.imap import ImapPoller
from console import ConsoleConfig, setup_console
from core.settings import Settings
from gateway.app import setup_gateway
from normalizer.worker import Normalizer
from ops import blobs, httpserver, opspage
from ops.demo import ensure_demo
from ops.health import serve_ops, setup_ops
from ops.runtime import Runtime
from portal import setup_portal
from router.worker import Router
from rules import sla_api
from ticket_service.api import setup_api
from ticket_service.portal_links import PortalLinks
from ticket_service.store.outbox import StoreOutbox

log = structlog.get_logger()


async def _until(stop: asyncio.Event, *workers) -> None:
    tasks = [asyncio.create_task(w.run()) for w in workers]
    waiter = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    for w in workers:
        w.stop()
    await asyncio.gather(*tasks)  # a crashed worker's exception surfaces here
    waiter.cancel()


async def _ops_port(rt: Runtime, stop: asyncio.Event) -> None:
    """/healthz, /readyz, /metrics for a role without an HTTP port, when a metrics port is set."""
    if not rt.settings.metrics_port:
        return
    runner = await serve_ops(rt.health, rt.settings.host, rt.settings.metrics_port)
    await stop.wait()
    await runner.cleanup()


def with_ops_port(role):
    async def main(rt: Runtime, stop: asyncio.Event) -> None:
        await asyncio.gather(role(rt, stop), _ops_port(rt, stop))
    return main


async def normalizer(rt: Runtime, stop: asyncio.Event, drain: bool = False) -> None:
    worker = Normalizer(rt.bus, rt.settings, rt.db, rt.blobs, channels=rt.channels, accounts=rt.accounts)
    rt.health.workers.append(worker)
    if drain:
        await worker.run(drain=True)
    else:
        s = rt.settings
        await asyncio.gather(_until(stop, worker), blobs.collect_periodically(
            rt.blobs, rt.db, rt.redis, s.blob_grace_s, s.blob_collect_interval_s, f"pid-{os.getpid()}", stop))


async def router(rt: Runtime, stop: asyncio.Event, drain: bool = False) -> None:
    worker = Router(rt.bus, rt.settings, rt.db, rt.classes)
    rt.health.workers.append(worker)
    if drain:
        await worker.run(drain=True)
    else:
        await _until(stop, worker)


async def sender(rt: Runtime, stop: asyncio.Event, drain: bool = False) -> None:
    """Send replies from ``outbound.<channel>``; every replica also offers to relay the outbox."""
    # Imported here, not with the module: the senders bring DKIM, DNS and SMTP client
    # libraries that no other role uses, and every role process would load them at start
    # (about 90 ms of CPU each, ``python -X importtime``; the router bench times the routers'
    # start: 1.83 -> 2.01 s of CPU for its two routers' imports with them).
    from connectors.relay import Relay
    from connectors.sender import Sender

    outbox = StoreOutbox(rt.db, rt.bus, rt.blobs, rt.settings.secret_key, links=portal_links(rt.settings))
    worker = Sender(rt.bus, rt.settings, outbox)
    rt.health.workers.append(worker)
    relay = Relay(rt.bus, rt.settings, outbox)
    if drain:
        await relay.relay_once()
        await worker.run(drain=True)
    else:
        await asyncio.gather(_until(stop, worker), relay.run(stop))


async def rules(rt: Runtime, stop: asyncio.Event, drain: bool = False) -> None:
    """Triggers, automations, SLA clocks and webhooks on ``ticket.events`` (group ``rules``)."""
    from rules import components
    from rules.worker import RulesWorker

    parts = components.build(rt.bus, rt.settings, rt.db, rt.classes)
    worker = RulesWorker(rt.bus, rt.settings, parts.handlers, parts.timers)
    rt.health.workers.append(worker)
    if drain:
        await worker.run(drain=True)
    else:
        await _until(stop, worker)


async def smtp_server(rt: Runtime, stop: asyncio.Event) -> None:
    s = rt.settings
    tls = email_tls.server_context(s.smtp_tls_cert, s.smtp_tls_key, required=s.smtp_require_tls)
    server = await smtp.serve(
        rt.bus, rt.accounts, s.host, s.smtp_port,
        max_size=s.max_message_size, hostname=s.smtp_hostname, tls_context=tls, require_tls=s.smtp_require_tls,
        limits=smtp.SessionLimits(s.smtp_idle_timeout_s, s.smtp_max_recipients, s.smtp_max_unknown_recipients,
                                  s.smtp_max_connections_per_ip, s.max_connections),
    )
    log.info("smtp.listening", host=s.host, port=s.smtp_port)
    await stop.wait()
    server.close()
    await server.wait_closed()


async def imap_poller(rt: Runtime, stop: asyncio.Event) -> None:
    """Fetch the registered IMAP mailboxes (none registered: it only looks for them now and then)."""
    await ImapPoller(rt.bus, rt.settings, rt.accounts.imap_mailboxes).run(stop)


def portal_links(s: Settings) -> PortalLinks | None:
    """Status-page links are signed with ``secret_key``: none without one (split roles share it)."""
    return PortalLinks(s.secret_key, s.effective_public_url, s.portal_link_ttl_s) if s.secret_key else None


def http_app(rt: Runtime, api: bool = True, gateway: bool = True) -> web.Application:
    app = web.Application(client_max_size=rt.settings.max_message_size)
    app.on_response_prepare.append(httpserver.secure_headers)
    setup_ops(app, rt.health)
    if gateway:
        setup_gateway(app, rt.bus, rt.accounts, rt.history, rt.settings.push_max_skew_s, rt.channels)
    if api:
        links = portal_links(rt.settings)
        setup_api(app, rt.db, rt.blobs, rt.classes, bus=rt.bus, secret_key=rt.settings.secret_key,
                  reply_limit=rt.settings.reply_max_body, links=links)
        setup_console(app, console_config(rt.settings), rt.db, rt.redis, rt.blobs, rt.bus, rt.classes)
        opspage.setup_routes(app)
        if links is not None:
            # The status page needs the bus: a customer's message goes to ``ingest.portal`` from here.
            setup_portal(app, rt.db, rt.blobs, rt.bus, links, rt.settings)
        from rules import api as rules_api

        rules_api.setup_routes(app)
        sla_api.setup_routes(app)
    return app


def console_config(s) -> ConsoleConfig:
    """The console's settings; its sessions are signed with the secret key the CLI would use too."""
    return ConsoleConfig(secret_key=s.secret_key or local_secret(s.data_dir), trust_proxy=s.console_trust_proxy,
                         session_s=s.console_session_s, login_limit=s.console_login_limit,
                         login_limit_addr=s.console_login_limit_addr, login_window_s=s.console_login_window_s)


async def http_server(rt: Runtime, stop: asyncio.Event, api: bool = True, gateway: bool = True) -> None:
    listener = await httpserver.listen(http_app(rt, api, gateway), rt.settings, rt.settings.http_port)
    log.info("http.listening", host=rt.settings.host, port=rt.settings.http_port, api=api, gateway=gateway)
    await stop.wait()
    await listener.close()


async def run_all(rt: Runtime, stop: asyncio.Event) -> None:
    """Every role in this one process (single machine, embedded defaults)."""
    if not rt.settings.secret_key:
        # One process, one machine: a secret kept in the data folder is enough to seal
        # credentials and sign reply tokens. Split roles must share SWITCHBOARD_SECRET_KEY.
        rt.settings = rt.settings.replace(secret_key=local_secret(rt.settings.data_dir))
    s = rt.settings
    demo = await ensure_demo(rt) if s.demo else None
    roles = [
        asyncio.create_task(smtp_server(rt, stop)),
        asyncio.create_task(http_server(rt, stop)),
        asyncio.create_task(normalizer(rt, stop)),
        asyncio.create_task(router(rt, stop)),
        asyncio.create_task(sender(rt, stop)),
        asyncio.create_task(rules(rt, stop)),
        asyncio.create_task(imap_poller(rt, stop)),
    ]
    await asyncio.sleep(0.2)
    _banner(rt, demo)
    await asyncio.gather(*roles)


def local_secret(data_dir: Path) -> str:
    """``<data>/secret_key``, made on first use; `run` and the CLI next to it share it."""
    path = data_dir / "secret_key"
    if not path.exists():
        # Written aside and linked in: a process starting at the same moment sees either no
        # key or the whole key, and both end up with the same one.
        tmp = data_dir / f".secret_key.{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()


def _banner(rt: Runtime, demo: dict | None) -> None:
    s = rt.settings
    lines = [
        "Switchboard is running",
        f"  SMTP  {s.host}:{s.smtp_port}",
        f"  HTTP  http://{s.host}:{s.http_port}  (API under /api/v1)",
        f"  console http://{s.host}:{s.http_port}/   status page /portal/<signed link>",
        f"  data  {s.data_dir.resolve()}",
    ]
    if demo:
        lines += [
            f"  demo tenant {demo['tenant']}: mail {demo['email']}",
            # A prefix only: stdout ends up in logs; the key itself is in demo.json (0600).
            f"  API key     {demo['api_key'][:8]}…  (whole key in {s.data_dir / 'demo.json'})",
        ]
        if "console" in demo:
            # The demo's own people on a local, private data folder: what a person needs to sign in.
            people = demo["console"]
            lines += ["  console sign-in (demo people):"] + [
                f"    {role:<10}  {people[role]['email']}  password {people[role]['password']}"
                for role in ("supervisor", "agent") if role in people]
        if "wechat" in demo:
            base = f"http://{s.host}:{s.http_port}"
            lines += [
                f"  WeChat  {base}/wechat/{demo['wechat']['account']}   Weibo {base}/weibo/{demo['weibo']['account']}",
                f"  form    {base}/forms/{demo['webform']['form']}   SDK {base}/sdk/v1/apps/{demo['sdk']['app']}",
                f"  (channel secrets in {s.data_dir / 'demo.json'})",
            ]
    print("\n".join(lines), file=sys.stdout, flush=True)
    log.info("switchboard.ready", demo=json.dumps(bool(demo)))
