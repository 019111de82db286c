"""JSON error answers, and parsing of ids and query parameters that answers 400, never 500."""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeAlias

import structlog
from aiohttp import web

from core.json_http import json_response

log = structlog.get_logger()

# Ids are INTEGER columns: a larger value is a driver error on PostgreSQL, not a miss.
MAX_ID = 2**31 - 1
_DIGITS = re.compile(r"[0-9]{1,10}")  # ASCII only: int() also accepts "١٢" and " 12 "

Headers: TypeAlias = Mapping[str, str] | None
Handler = Callable[..., Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """An answer for the client: HTTP status, a stable code and a message."""

    def __init__(self, status: int, code: str, message: str, headers: Headers = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def error_response(status: int, code: str, message: str, headers: Headers = None) -> web.Response:
    """The JSON body every API error has: ``{"error": {"code", "message"}}``."""
    return json_response({"error": {"code": code, "message": message}}, status=status, headers=headers)


def not_found(what: str, ident: int) -> ApiError:
    return ApiError(404, "not_found", f"{what} {ident} not found")


def invalid_parameter(name: str, why: str) -> ApiError:
    return ApiError(400, "invalid_parameter", f"parameter {name!r} {why}")


def parse_int(raw: str, name: str, low: int = 1, high: int = MAX_ID) -> int:
    """``raw`` as an integer in ``[low, high]``, else a 400 naming the parameter."""
    if not _DIGITS.fullmatch(raw) or not low <= int(raw) <= high:
        raise invalid_parameter(name, f"must be an integer from {low} to {high}")
    return int(raw)


def parse_id(raw: str, name: str = "id") -> int:
    return parse_int(raw, name)


def json_errors(handler: Handler) -> Handler:
    """Turn ``ApiError`` into its JSON answer and anything unexpected into a logged JSON 500."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request, *args) -> web.StreamResponse:
        try:
            return await handler(request, *args)
        except web.HTTPException:
            raise
        except ApiError as exc:
            log.info("api.request_rejected", method=request.method, path=request.path,
                     status=exc.status, code=exc.code)
            return error_response(exc.status, exc.code, exc.message, exc.headers)
        except Exception:
            log.exception("api.request_failed", method=request.method, path=request.path)
            return error_response(500, "internal_error", "internal error")

    return wrapper
