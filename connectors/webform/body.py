"""A form body in any of the three encodings browsers and scripts send -> fields and files."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from urllib.parse import parse_qsl

from connectors.filenames import safe_filename
from connectors.webform.parts import MAX_FIELDS, BadForm, Limits, TooMuch, check

__all__ = ["MAX_FIELDS", "BadForm", "File", "Limits", "Submission", "TooMuch", "UnsupportedType", "read"]


class UnsupportedType(ValueError):
    pass


@dataclass(slots=True)
class File:
    field: str
    filename: str
    content_type: str
    data: bytes


@dataclass(slots=True)
class Submission:
    fields: dict[str, str] = field(default_factory=dict)  # first value of each name
    files: list[File] = field(default_factory=list)


def read(content_type: str, body: bytes, limits: Limits | None = None) -> Submission:
    """Decode a body by its Content-Type (CPU-bound: run it off the event loop).

    A multipart body is counted against ``limits`` before it is parsed (``TooMuch``), as the
    gateway did while it arrived: a body from anywhere else is held to the same bounds.
    """
    mime = content_type.split(";", 1)[0].strip().lower()
    limits = limits or Limits()
    if len(body) > limits.max_bytes:
        raise TooMuch("too_large", f"body exceeds {limits.max_bytes} bytes")
    if mime == "application/x-www-form-urlencoded":
        return _urlencoded(body)
    if mime == "multipart/form-data":
        check(content_type, body, limits)
        return _multipart(content_type, body)
    if mime == "application/json":
        return _json(body)
    raise UnsupportedType(f"content type {mime or '(none)'!r} is not a form encoding")


def _add(sub: Submission, name: str, value: str) -> None:
    if len(sub.fields) >= MAX_FIELDS:
        raise BadForm(f"more than {MAX_FIELDS} fields")
    sub.fields.setdefault(name, value)


def _urlencoded(body: bytes) -> Submission:
    try:
        # errors="strict": a %-escape that is not UTF-8 is an error, not a replacement character.
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body),
                          max_num_fields=MAX_FIELDS, errors="strict")
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadForm(f"not a urlencoded form: {exc}") from None
    sub = Submission()
    for name, value in pairs:
        _add(sub, name, value)
    return sub


def _multipart(content_type: str, body: bytes) -> Submission:
    # RFC 7578: multipart/form-data is MIME; the stdlib MIME parser reads it from the bytes.
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    msg = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    if not msg.is_multipart() or msg.defects:
        why = ", ".join(type(d).__name__ for d in msg.defects) or "no parts"
        raise BadForm(f"malformed multipart body ({why})")
    sub = Submission()
    for part in msg.iter_parts():
        if part.is_multipart() or part.defects or part.get_content_disposition() != "form-data":
            raise BadForm("a multipart part is not form-data")
        name = part.get_param("name", header="content-disposition")
        if not name:
            raise BadForm("a multipart part has no field name")
        data = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is not None:
            sub.files.append(File(name, safe_filename(filename), part.get_content_type(), data))
            continue
        try:
            _add(sub, name, data.decode(part.get_content_charset() or "utf-8"))
        except (UnicodeDecodeError, LookupError):
            raise BadForm(f"field {name!r} is not valid text") from None
    return sub


def _json(body: bytes) -> Submission:
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadForm(f"malformed JSON: {exc}") from None
    except RecursionError:
        raise BadForm("JSON nested too deeply (a form is one object of plain values)") from None
    if not isinstance(doc, dict):
        raise BadForm("JSON body is not an object")
    sub = Submission()
    for name, value in doc.items():
        if isinstance(value, dict | list) or value is None:
            raise BadForm(f"field {name!r} is not a string, number or boolean")
        _add(sub, name, value if isinstance(value, str) else json.dumps(value))
    return sub
