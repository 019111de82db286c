"""Reading a request's JSON body: size, nesting and numbers answer 400/413 naming the problem,
before anything is written or queued, never 500."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from ticket_service.api.errors import MAX_ID, ApiError

MAX_BODY = 64 * 1024  # the largest body an API route takes (a rule is at most 16 KiB as JSON)
MAX_DEPTH = 8  # nesting of objects and arrays; the deepest valid body (a rule's match lists) is 3


def invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_body", message)


def integer(value: Any, name: str, low: int = 0, high: int = MAX_ID) -> int:
    """``value`` if it is an integer in ``[low, high]`` (INTEGER columns are 32-bit on
    PostgreSQL); bool is not an integer, nor is a float such as 1e23."""
    if type(value) is not int or not low <= value <= high:
        raise invalid(f"{name} must be an integer from {low} to {high}")
    return value


def _constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")  # RFC 8259 §6: NaN and Infinity are not permitted


async def _read(request: web.Request, limit: int) -> bytes:
    too_large = ApiError(413, "body_too_large", f"body is over the limit of {limit} bytes")
    if (request.content_length or 0) > limit:
        raise too_large
    data = bytearray()
    async for chunk in request.content.iter_chunked(16 * 1024):
        data += chunk
        if len(data) > limit:
            raise too_large
    return bytes(data)


def _check_depth(doc: Any) -> None:
    """Refuse bodies nested deeper than ``MAX_DEPTH``, walked without recursion. (Numbers are
    bounded field by field, with ``integer``.)"""
    stack: list[tuple[Any, str, int]] = [(doc, "body", 0)]
    while stack:
        value, where, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth >= MAX_DEPTH:
                raise invalid(f"{where} nests deeper than {MAX_DEPTH} levels")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                name = f"{where}.{key}" if isinstance(value, dict) else f"{where}[{key}]"
                stack.append((item, name[:200], depth + 1))


def parse(raw: bytes) -> dict:
    """A JSON object from ``raw``, or ``ApiError`` 400."""
    try:
        doc = json.loads(raw, parse_constant=_constant)
    except RecursionError:
        raise invalid(f"body nests deeper than {MAX_DEPTH} levels") from None
    except ValueError:  # also UnicodeDecodeError, and integers over Python's 4300 digits
        raise invalid("body is not JSON") from None
    if not isinstance(doc, dict):
        raise invalid("body must be a JSON object")
    _check_depth(doc)
    return doc


async def json_object(request: web.Request, limit: int = MAX_BODY) -> dict:
    """The body of ``request`` as a JSON object, at most ``limit`` bytes."""
    return parse(await _read(request, limit))
