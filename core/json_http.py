"""JSON answers over HTTP: UTF-8, with non-ASCII kept as text (``订单``, not ``\\u8ba2\\u5355``)."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

# RFC 8259 §8.1: JSON exchanged between systems is UTF-8; escaping every non-ASCII character
# only makes Chinese text six times longer and unreadable in logs and curl.
dumps = functools.partial(json.dumps, ensure_ascii=False)


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """``body`` as ``application/json; charset=utf-8``."""
    return web.json_response(body, status=status, headers=headers, dumps=dumps)
