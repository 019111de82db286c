"""A tenant's custom field definitions, and the values tickets hold for them.

A ticket's values live in ``tickets.fields`` (what the API shows) and, one row per value, in
``ticket_field_values`` (what filters read); ``set_values`` writes both in the caller's
transaction. Synchronous, like the other ticket stores: async callers use ``run_sync``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection

from ticket_service.field_schema import MAX_FIELDS, Field, FieldError, index_rows
from ticket_service.store.tables import custom_fields, ticket_field_values, tickets

_COLS = (custom_fields.c.name, custom_fields.c.type, custom_fields.c.label, custom_fields.c.required,
         custom_fields.c.choices)


def _field(row) -> Field:
    return Field(row.name, row.type, row.label, bool(row.required), tuple(row.choices or ()))


def definitions(conn: Connection, tenant_id: int) -> dict[str, Field]:
    """The tenant's fields by name, oldest first."""
    rows = conn.execute(select(*_COLS).where(custom_fields.c.tenant_id == tenant_id).order_by(custom_fields.c.id))
    return {row.name: _field(row) for row in rows}


def add_field(conn: Connection, tenant_id: int, field: Field, now: int) -> None:
    """Add a field; ``FieldError`` 409 when the name is taken or the tenant has ``MAX_FIELDS``."""
    existing = definitions(conn, tenant_id)
    if field.name in existing:
        raise FieldError(f"a field named {field.name} exists", 409, "conflict")
    if len(existing) >= MAX_FIELDS:
        raise FieldError(f"a tenant has at most {MAX_FIELDS} fields", 409, "too_many_fields")
    conn.execute(insert(custom_fields).values(
        tenant_id=tenant_id, name=field.name, type=field.type, label=field.label, required=field.required,
        choices=list(field.choices) or None, created_at=now, updated_at=now))


def update_field(conn: Connection, tenant_id: int, field: Field, now: int) -> bool:
    """Change label, required and choices (values already stored stay as they are)."""
    done = conn.execute(update(custom_fields).where(
        custom_fields.c.tenant_id == tenant_id, custom_fields.c.name == field.name,
    ).values(label=field.label, required=field.required, choices=list(field.choices) or None, updated_at=now))
    return done.rowcount > 0


def remove_field(conn: Connection, tenant_id: int, name: str) -> bool:
    """Remove a field and every value tickets hold for it."""
    holders = list(dict.fromkeys(conn.execute(select(ticket_field_values.c.ticket_id).where(
        ticket_field_values.c.tenant_id == tenant_id, ticket_field_values.c.name == name)).scalars()))
    for ticket_id in holders:
        _write(conn, tenant_id, ticket_id, {name: None}, {})
    done = conn.execute(delete(custom_fields).where(custom_fields.c.tenant_id == tenant_id,
                                                    custom_fields.c.name == name))
    return done.rowcount > 0


def values(conn: Connection, tenant_id: int, ticket_id: int) -> dict[str, Any]:
    row = conn.execute(select(tickets.c.fields).where(tickets.c.tenant_id == tenant_id, tickets.c.id == ticket_id)
                       .with_for_update()).first()
    return dict(row.fields or {}) if row else {}


def set_values(conn: Connection, tenant_id: int, ticket_id: int, changes: Mapping[str, Any],
               defs: Mapping[str, Field]) -> dict[str, Any]:
    """Apply checked values (None clears one) to a ticket; returns all its values now."""
    return _write(conn, tenant_id, ticket_id, changes, defs)


def _write(conn: Connection, tenant_id: int, ticket_id: int, changes: Mapping[str, Any],
           defs: Mapping[str, Field]) -> dict[str, Any]:
    current = values(conn, tenant_id, ticket_id)
    for name, stored in changes.items():
        if stored is None:
            current.pop(name, None)
        else:
            current[name] = stored
    conn.execute(update(tickets).where(tickets.c.id == ticket_id).values(fields=current or None))
    conn.execute(delete(ticket_field_values).where(ticket_field_values.c.ticket_id == ticket_id,
                                                   ticket_field_values.c.name.in_(list(changes))))
    rows = [{"tenant_id": tenant_id, "ticket_id": ticket_id, "name": name, "value_text": text, "value_num": num}
            for name, stored in changes.items() if stored is not None
            for text, num in index_rows(defs[name], stored)]
    if rows:
        conn.execute(insert(ticket_field_values), rows)
    return current


def missing_required(defs: Mapping[str, Field], current: Mapping[str, Any]) -> list[str]:
    """Required fields without a value, in definition order."""
    return [name for name, f in defs.items() if f.required and current.get(name) is None]

