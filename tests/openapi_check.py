"""Every JSON answer of an ``/api/v1`` route checked against the OpenAPI document, in any test
that builds the API with ``setup_api``: the schema of its route, method and status (else the
operation's ``default``) by jsonschema, Draft 2020-12 (the dialect of OpenAPI 3.1). A mismatch,
an undocumented route or status, or JSON not sent as UTF-8 fails the test at teardown.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from ticket_service.api import openapi
from ticket_service.api.tickets import PREFIX

_BASE = "urn:switchboard:openapi"


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


@dataclass
class ResponseCheck:
    """Validators by (method, path, status), built from the document; what failed, and how many passed."""

    doc: dict
    failures: list[str] = field(default_factory=list)
    checked: int = 0

    def __post_init__(self) -> None:
        self.registry = Registry().with_resource(_BASE, Resource.from_contents(self.doc, DRAFT202012))
        self._others: dict[int, ResponseCheck] = {}

    def of(self, doc: dict) -> ResponseCheck:
        """The check against ``doc`` (an app's own document, when more is mounted beside the API)."""
        if doc is self.doc or doc == self.doc:
            return self
        if id(doc) not in self._others:
            self._others[id(doc)] = ResponseCheck(doc, self.failures)
        return self._others[id(doc)]

    def validate(self, method: str, path: str, status: int, body: object) -> str | None:
        """The first problem with this answer, or None."""
        operation = self.doc["paths"].get(path, {}).get(method)
        if operation is None:
            return f"{method.upper()} {PREFIX}{path} is not in the OpenAPI document"
        key = str(status) if str(status) in operation["responses"] else "default"
        content = operation["responses"].get(key, {}).get("content", {}).get("application/json")
        if content is None:
            return f"{method.upper()} {PREFIX}{path} answered {status} JSON the document does not describe"
        where = _pointer("paths", path, method, "responses", key, "content", "application/json", "schema")
        validator = Draft202012Validator({"$ref": f"{_BASE}#/{where}"}, registry=self.registry)
        error = next(iter(sorted(validator.iter_errors(body), key=lambda e: e.path)), None)
        if error is not None:
            at = "/".join(str(p) for p in error.absolute_path)
            return f"{method.upper()} {PREFIX}{path} {status}: at /{at}: {error.message[:300]}"
        return None

    @web.middleware
    async def middleware(self, request: web.Request, handler) -> web.StreamResponse:
        response = await handler(request)
        resource = request.match_info.route.resource
        canonical = resource.canonical if resource is not None else ""
        if canonical.startswith(PREFIX + "/") and isinstance(response, web.Response):
            against = self.of(openapi.app_document(request.app))
            self._check(request.method.lower(), canonical[len(PREFIX):], response, against)
        return response

    def _check(self, method: str, path: str, response: web.Response, against: ResponseCheck) -> None:
        if response.content_type != "application/json":
            return
        self.checked += 1
        if response.charset != "utf-8":
            self.failures.append(f"{method.upper()} {PREFIX}{path}: JSON sent as {response.charset}, not utf-8")
        problem = against.validate(method, path, response.status, json.loads(response.body))
        if problem:
            self.failures.append(problem)


@pytest.fixture(autouse=True)
def api_responses_match_the_document(monkeypatch):
    """Every app ``setup_api`` builds in this test gets the checking middleware."""
    check = ResponseCheck(openapi.document())
    serve_document = openapi.setup_routes

    def setup_routes(app: web.Application) -> None:
        serve_document(app)
        app.middlewares.append(check.middleware)

    monkeypatch.setattr(openapi, "setup_routes", setup_routes)
    yield check
    assert not check.failures, "answers the OpenAPI document does not describe:\n" + "\n".join(check.failures)
