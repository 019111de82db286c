"""``set_field`` actions against the tenant's custom field definitions.

A value a trigger or automation sets goes through the same checks as one set with
``PATCH /tickets/{id} {"fields": ...}`` (``ticket_service.field_schema.value``): when the
definition is saved, so a typo answers 400 naming its path (``then[0].value``), and again
when it fires, since the field may have lost a choice or been removed since.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import Connection

from rules.conditions import ConditionError
from ticket_service import field_schema
from ticket_service.field_schema import Field, FieldError
from ticket_service.store import fields as fields_store


def value(defs: Mapping[str, Field], spec: Mapping[str, Any], where: str) -> Any:
    """The value as the field stores it (None clears it), or ``ConditionError`` naming the path."""
    field = defs.get(spec["name"])
    if field is None:
        raise ConditionError(f"{where}.name", f"{spec['name']} is not a custom field of this tenant")
    if spec["value"] is None:
        return None
    try:
        return field_schema.value(field, spec["value"])
    except FieldError as exc:
        raise ConditionError(f"{where}.value", f"{field.name} {exc.why}") from None


def check(conn: Connection, tenant_id: int, actions: list[dict], path: str = "then") -> None:
    """Every ``set_field`` of ``actions`` (stored form) against the tenant's fields."""
    defs = None
    for i, spec in enumerate(actions):
        if spec["type"] == "set_field":
            defs = fields_store.definitions(conn, tenant_id) if defs is None else defs
            value(defs, spec, f"{path}[{i}]")
