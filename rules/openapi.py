"""OpenAPI 3.1 path items of ``rules.api`` (keys relative to ``/api/v1``)."""

from __future__ import annotations

from rules.actions import CHECKS, MAX_ACTIONS
from rules.definitions import EVENTS, MAX_NAME

ERROR = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["code", "message"],
    "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}}
CONDITIONS = {"type": "object", "description": "a condition set: {all: [...], any: [...]} of "
              "{field, op, value} tests or nested sets (see docs/rules.md)",
              "properties": {"all": {"type": "array"}, "any": {"type": "array"}}, "additionalProperties": False}
ACTIONS = {"type": "array", "minItems": 1, "maxItems": MAX_ACTIONS, "items": {"anyOf": [
    {"type": "object", "required": ["type"], "properties": {"type": {"enum": list(CHECKS)}},
     "description": "the stored form: {type, <its keys>} (see docs/rules.md)"},
    {"type": "object", "required": ["action", "value"], "additionalProperties": False,
     "properties": {"action": {"enum": list(CHECKS)}, "value": {}},
     "description": "the short form, taken on input: {action, value}"}]}}


def _definition(kind: str, stored: bool) -> dict:
    props = {"name": {"type": "string", "maxLength": MAX_NAME}, "if": CONDITIONS, "then": ACTIONS,
             "position": {"type": "integer", "minimum": 1, "description": "1 = first; default last"},
             "active": {"type": "boolean", "default": True}}
    required = ["name", "then"]
    if kind == "trigger":
        props["on"] = {"type": "array", "minItems": 1, "items": {"enum": list(EVENTS)}}
        required.append("on")
    if stored:
        props |= {"id": {"type": "integer"}, "created_at": {"type": "string", "format": "date-time"},
                  "updated_at": {"type": "string", "format": "date-time"}}
        required = [*required, "id", "if", "position", "active", "created_at", "updated_at"]
    return {"type": "object", "required": required, "properties": props, "additionalProperties": not stored}


def _answer(description: str, schema: dict | None = None) -> dict:
    if schema is None:
        return {"description": description}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict:
    text = {400: "bad field, named with its path (then[2].template)", 401: "missing or invalid API key",
            404: "not found (or another tenant's)", 409: "the tenant holds the most it may",
            413: "body over the limit"}
    return {str(c): _answer(text[c], ERROR) for c in codes}


def _paths(kind: str) -> dict:
    plural, new, stored = f"{kind}s", _definition(kind, False), _definition(kind, True)
    body = {"required": True, "content": {"application/json": {"schema": new}}}
    one = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
    listed = {"type": "object", "required": ["items"], "properties": {"items": {"type": "array", "items": stored}}}
    return {
        f"/{plural}": {
            "get": {"summary": f"the tenant's {plural} in order", "responses": {
                "200": _answer(f"the {plural}", listed), **_errors(401)}},
            "post": {"summary": f"add a {kind}", "requestBody": body, "responses": {
                "201": _answer(f"the stored {kind}", stored), **_errors(400, 401, 409, 413)}},
        },
        f"/{plural}/{{id}}": {
            "parameters": [one],
            "get": {"summary": f"one {kind}", "responses": {"200": _answer(kind, stored), **_errors(401, 404)}},
            "put": {"summary": f"replace a {kind} (position moves it)", "requestBody": body, "responses": {
                "200": _answer(f"the stored {kind}", stored), **_errors(400, 401, 404, 413)}},
            "delete": {"summary": f"remove a {kind}", "responses": {"204": _answer("removed"), **_errors(401, 404)}},
        },
    }


FIRING = {"type": "object", "required": ["id", "at", "source", "event", "result", "actions"], "properties": {
    "id": {"type": "integer"}, "at": {"type": "string", "format": "date-time"},
    "source": {"type": "object", "properties": {"kind": {"enum": ["trigger", "automation"]},
                                                "id": {"type": "integer"}, "name": {"type": "string"}}},
    "event": {"type": "object", "properties": {"id": {"type": "string"}, "type": {"type": "string"}}},
    "result": {"enum": ["applied", "error"]}, "error": {"type": ["string", "null"]},
    "actions": {"type": "array", "items": {"type": "object"}}}}

PATHS: dict = {
    **_paths("trigger"), **_paths("automation"),
    "/tickets/{id}/audit": {"get": {
        "summary": "the triggers and automations that fired on a ticket, newest first",
        "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}},
                       {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
                       {"name": "cursor", "in": "query", "schema": {"type": "string"}}],
        "responses": {"200": _answer("a page of firings", {"type": "object", "required": ["items", "next"],
                                                           "properties": {
            "items": {"type": "array", "items": FIRING}, "next": {"type": ["string", "null"]},
            "routing": {"type": "string", "description": "the ticket's routing decisions"}}}),
            **_errors(400, 401, 404)}}},
}
