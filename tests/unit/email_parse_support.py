"""Mail as the email parse tests build it, and the parse as the normalizer runs it."""

import hashlib
from dataclasses import asdict

import msgpack

from connectors.email import parse
from connectors.inbound import Inbound
from core.envelope import Envelope

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))


def _mail(*headers: str, body: bytes = b"") -> bytes:
    return "\r\n".join(headers).encode("ascii") + b"\r\n\r\n" + body


def _parse(raw: bytes, **meta: str) -> Inbound:
    [inbound] = parse(Envelope(tenant="t", channel="email", account="1", payload=raw, meta=meta))
    msgpack.packb(asdict(inbound), use_bin_type=True)  # what the normalizer publishes
    return inbound


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
