"""Mounting the console on an aiohttp application."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web
from redis.asyncio import Redis

from console import auth, dashboard, events, inbox, login, ticket
from console.render import JINJA
from console.session import CONFIG, ConsoleConfig
from core.blobs import BlobStore
from core.bus import Bus
from ticket_service.store.db import Database

STATIC = Path(__file__).resolve().parent / "static"
STATIC_PREFIX = "/console/static/"


def setup_console(app: web.Application, config: ConsoleConfig, db: Database, redis: Redis, blobs: BlobStore,
                  bus: Bus | None, classes: Mapping[str, str]) -> None:
    """Add the console's pages, event stream and static files to ``app``."""
    if not config.secret_key:
        raise ValueError("the console signs its sessions with the secret key: set SWITCHBOARD_SECRET_KEY")
    env = aiohttp_jinja2.setup(app, app_key=JINJA, loader=jinja2.PackageLoader("console", "templates"),
                               autoescape=True, undefined=jinja2.StrictUndefined)
    env.policies["urlize.rel"] = "noopener noreferrer nofollow"
    app[CONFIG] = config
    app[auth.DB] = db
    app[auth.REDIS] = redis
    app[login.LIMITS] = auth.LoginLimits(redis, config)
    login.setup_routes(app)
    inbox.setup_routes(app)
    dashboard.setup_routes(app)
    ticket.setup_routes(app, blobs, bus, classes, config.secret_key)
    events.setup_routes(app, redis)
    app.router.add_static(STATIC_PREFIX, STATIC, name="console_static", append_version=False)
