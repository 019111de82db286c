"""Small builders for the OpenAPI 3.1 path items each API module declares in its ``PATHS``.

A module's ``PATHS`` maps a path under ``/api/v1`` (``/tickets/{id}``) to its operations; its
``SCHEMAS``, if any, are added to ``components.schemas``. ``openapi`` gathers them all.
"""

from __future__ import annotations

from typing import Any

# What every error answers (ticket_service.api.errors.error_response).
ERROR = {
    "type": "object", "required": ["error"], "additionalProperties": False,
    "properties": {"error": {
        "type": "object", "required": ["code", "message"], "additionalProperties": False,
        "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
    }},
}
_WHY = {400: "Bad request: the parameter or field is named", 401: "Missing or invalid API key",
        404: "Not found", 409: "Conflict", 413: "Body too large", 503: "Not configured"}
ID_PARAM = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
NULLABLE_STRING = {"type": ["string", "null"]}
TIME = {"type": ["string", "null"], "format": "date-time"}


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def json_content(schema: dict) -> dict:
    return {"content": {"application/json": {"schema": schema}}}


def errors(*statuses: int) -> dict:
    """Error answers by status, plus ``default`` (any other error, e.g. 500) with the same shape."""
    out: dict[str, Any] = {str(s): {"description": _WHY.get(s, "Error"), **json_content(ref("Error"))}
                           for s in (401, *statuses)}
    out["default"] = {"description": "Any other error", **json_content(ref("Error"))}
    return out


def operation(summary: str, responses: dict[int, tuple[str, dict | None]], *error_statuses: int,
              body: dict | None = None, params: list[dict] | None = None, auth: bool = True) -> dict:
    """One operation: ``responses`` maps a success status to (description, schema or None)."""
    out: dict[str, Any] = {"summary": summary, "responses": {}}
    for status, (description, schema) in responses.items():
        out["responses"][str(status)] = {"description": description, **(json_content(schema) if schema else {})}
    if auth:
        out["responses"].update(errors(*error_statuses))
    else:
        out["security"] = []
    if params:
        out["parameters"] = params
    if body is not None:
        out["requestBody"] = {"required": True, **json_content(body)}
    return out


def page_of(item: dict, **extra: dict) -> dict:
    """A keyset page: ``items`` and ``next`` (a cursor, or null on the last page)."""
    return {"type": "object", "required": ["items", "next", *extra], "additionalProperties": False,
            "properties": {"items": {"type": "array", "items": item}, "next": NULLABLE_STRING, **extra}}


def items_of(item: dict) -> dict:
    return {"type": "object", "required": ["items"], "additionalProperties": False,
            "properties": {"items": {"type": "array", "items": item}}}


def obj(required: list[str] | tuple[str, ...], /, open_: bool = False, **props: dict) -> dict:
    """An object with these properties; ``required`` lists the ones always present."""
    out = {"type": "object", "required": list(required), "properties": props}
    if not open_:
        out["additionalProperties"] = False
    return out
