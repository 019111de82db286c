"""The customer status page: ``/portal/{token}``, mounted by the ``api`` role and ``run``."""

from __future__ import annotations

import aiohttp_jinja2
import jinja2
from aiohttp import web

from core.blobs import BlobStore
from core.bus import Bus
from core.settings import Settings
from portal import pages, post
from portal.access import Portal
from ticket_service.portal_links import PortalLinks
from ticket_service.store.db import Database


def setup_portal(app: web.Application, db: Database, blobs: BlobStore, bus: Bus, links: PortalLinks,
                 settings: Settings) -> None:
    """Add the status page's routes; its templates live under their own key (the console has its own)."""
    aiohttp_jinja2.setup(app, app_key=pages.JINJA, loader=jinja2.PackageLoader("portal", "templates"),
                         autoescape=True, undefined=jinja2.StrictUndefined, default_helpers=False)
    app[pages.PORTAL] = Portal(db, blobs, bus, links, settings)
    # The stylesheet first: a fixed path is matched before the token pattern.
    app.router.add_get(pages.STYLESHEET_URL, pages.stylesheet)
    app.router.add_get("/portal/{token}", pages.page)
    app.router.add_get("/portal/{token}/attachments/{id}", pages.attachment)
    app.router.add_post("/portal/{token}/messages", post.post_message)


__all__ = ["setup_portal"]
