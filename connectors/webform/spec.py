"""A form's configuration (which field means what) and what a submission says under it."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field

from connectors.contact import FieldError, e164
from connectors.contact import email as checked_email
from connectors.webform.body import Submission

# Role -> the form's field name; each form may rename any of them in its account settings.
DEFAULT_FIELDS = {"subject": "subject", "body": "message", "email": "email", "phone": "phone",
                  "name": "name", "ticket": "ticket"}
_TOKEN = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")
MAX_BODY_CHARS = 100_000


@dataclass(frozen=True, slots=True)
class FormSpec:
    """``fields``, ``custom``, ``required``, ``honeypot``, ``token_field``, ``region`` settings."""

    fields: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_FIELDS))
    custom: tuple[str, ...] = ()
    required: tuple[str, ...] = ("body",)
    honeypot: str = ""
    token_field: str = "submission_id"
    region: str = "CN"  # phone numbers without a country code are read as this region's

    @classmethod
    def from_settings(cls, settings: dict) -> FormSpec:
        return cls(
            fields={**DEFAULT_FIELDS, **settings.get("fields", {})},
            custom=tuple(settings.get("custom", ())),
            required=tuple(settings.get("required", ("body",))),
            honeypot=settings.get("honeypot", ""),
            token_field=settings.get("token_field", "submission_id"),
            region=settings.get("region", "CN"),
        )

    def to_meta(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_meta(cls, raw: str) -> FormSpec:
        doc = json.loads(raw)
        return cls(fields=doc["fields"], custom=tuple(doc["custom"]), required=tuple(doc["required"]),
                   honeypot=doc["honeypot"], token_field=doc["token_field"], region=doc["region"])


@dataclass(slots=True)
class Contact:
    """What the submitter told us, validated and normalized."""

    subject: str = ""
    body: str = ""
    email: str = ""
    phone: str = ""  # E.164
    name: str = ""
    ticket_number: int | None = None
    custom: dict[str, str] = field(default_factory=dict)
    token: str = ""


def is_spam(spec: FormSpec, sub: Submission) -> bool:
    """A filled honeypot: a field people never see, so only a bot fills it."""
    return bool(spec.honeypot and sub.fields.get(spec.honeypot, "").strip())


def contact(spec: FormSpec, sub: Submission) -> Contact:
    def value(role: str) -> str:
        return sub.fields.get(spec.fields.get(role, ""), "").strip()

    for role in spec.required:
        if not value(role) and not (role == "body" and sub.files):
            raise FieldError("missing_field", f"field {spec.fields.get(role, role)!r} is required")
    c = Contact(subject=value("subject")[:1000], body=value("body"), name=value("name")[:200],
                custom={n: sub.fields[n][:2000] for n in spec.custom if sub.fields.get(n, "").strip()})
    if len(c.body) > MAX_BODY_CHARS:
        raise FieldError("field_too_long", f"field {spec.fields['body']!r} is over {MAX_BODY_CHARS} characters")
    if email := value("email"):
        c.email = checked_email(email, spec.fields["email"])
    if phone := value("phone"):
        c.phone = e164(phone, spec.region, spec.fields["phone"])
    if ticket := value("ticket"):
        digits = ticket.lstrip("#")
        if not digits.isascii() or not digits.isdigit() or len(digits) > 9:
            raise FieldError("invalid_field", f"field {spec.fields['ticket']!r} is not a ticket number")
        c.ticket_number = int(digits)
    if token := sub.fields.get(spec.token_field, "").strip():
        if not _TOKEN.match(token):
            raise FieldError("invalid_field", f"field {spec.token_field!r} must be 8-128 of A-Z a-z 0-9 . _ : -")
        c.token = token
    return c
