"""Contact details as customers type them, checked and normalized (email, E.164 phone)."""

from __future__ import annotations

import re

import phonenumbers

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s.]{2,}$")


class FieldError(ValueError):
    """A field the sender got wrong: a stable reason and a message naming the field."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


def email(raw: str, name: str) -> str:
    if len(raw) > 254 or not _EMAIL.match(raw):
        raise FieldError("invalid_field", f"field {name!r} is not an email address")
    return raw.lower()


def e164(raw: str, region: str, name: str) -> str:
    """A phone number as E.164 (``+8613800138000``), else a FieldError naming the field."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise FieldError("invalid_field", f"field {name!r} is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
