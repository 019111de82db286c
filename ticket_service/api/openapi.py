"""``GET /api/v1/openapi.json``: the OpenAPI 3.1 document of every ``/api/v1`` route, no key needed.

Each module of this package that serves routes declares them in a module-level ``PATHS`` (and
its component schemas in ``SCHEMAS``) next to its ``setup_routes``; ``document`` gathers every
module's, so a new API module is described by what it declares, with no list to keep here.
Routes another package mounts beside the API (the rules' triggers, calendars, SLA policies)
are described by that package's module, handed over with ``describe(app, module)``.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from types import ModuleType
from typing import Any

from aiohttp import web

from core.json_http import json_response
from ticket_service.api.spec import obj, operation
from ticket_service.api.tickets import PREFIX

EXTRA = web.AppKey("api_openapi_extra", list)
_CACHE = web.AppKey("api_openapi_cache", dict)
VERSION = "3.1.0"
# Draft 2020-12 is the schema dialect of OpenAPI 3.1 (OAS 3.1 §4.8.24).
DIALECT = "https://spec.openapis.org/oas/3.1/dialect/base"

PATHS = {"/openapi.json": {"get": operation(
    "This document", {200: ("The OpenAPI 3.1 document", obj(("openapi", "info", "paths"), open_=True,
                                                           openapi={"type": "string"}))}, auth=False)}}


def _modules():
    package = importlib.import_module("ticket_service.api")
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        yield importlib.import_module(f"ticket_service.api.{info.name}")


def document(extra: Iterable[ModuleType] = ()) -> dict[str, Any]:
    """Every module's ``PATHS`` and ``SCHEMAS``; two modules may add methods to one path."""
    paths: dict[str, dict] = {}
    schemas: dict[str, dict] = {}
    for module in (*_modules(), *extra):
        for path, item in getattr(module, "PATHS", {}).items():
            clash = set(paths.get(path, {})) & set(item)
            if clash:
                raise ValueError(f"{module.__name__} describes {sorted(clash)} {path} a second time")
            paths.setdefault(path, {}).update(item)
        schemas.update(getattr(module, "SCHEMAS", {}))
    return {
        "openapi": VERSION,
        "jsonSchemaDialect": DIALECT,
        "info": {"title": "Switchboard API", "version": "1",
                 "description": "Tickets, messages, replies, agents, routing and custom fields of one tenant, "
                                "chosen by the API key. Errors answer {\"error\": {\"code\", \"message\"}}."},
        "servers": [{"url": PREFIX}],
        "security": [{"apiKey": []}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer",
                                           "description": "Authorization: Bearer <key> (switchboard apikey create)"}},
        },
    }


def describe(app: web.Application, module: ModuleType) -> None:
    """Add the ``PATHS``/``SCHEMAS`` of ``module``, whose routes are mounted on ``app`` beside the API."""
    app[EXTRA].append(module)


def app_document(app: web.Application) -> dict[str, Any]:
    """The document of what ``app`` serves, built on first use."""
    cache = app[_CACHE]
    if "doc" not in cache:
        cache["doc"] = document(app[EXTRA])
    return cache["doc"]


async def get_document(request: web.Request) -> web.Response:
    return json_response(app_document(request.app))


def setup_routes(app: web.Application) -> None:
    app[EXTRA] = []
    app[_CACHE] = {}
    app.router.add_get(f"{PREFIX}/openapi.json", get_document)
