"""Custom ticket fields filled from what a web form or an app sent (the account's ``field_map``).

A value that does not fit its field stays in the message (its headers keep what was sent) and
is not set: the customer's message never fails over a field (logged at info, their input).
"""

from __future__ import annotations

from collections.abc import Mapping

import structlog
from sqlalchemy.engine import Connection

from ticket_service.field_schema import FieldError, from_text
from ticket_service.store import fields as fields_store

log = structlog.get_logger()


def apply_field_map(conn: Connection, tenant_id: int, ticket_id: int, field_map: Mapping[str, str],
                    submitted: Mapping[str, str]) -> dict[str, object]:
    """Set the ticket's custom fields the map names from ``submitted``; returns what was set."""
    if not isinstance(field_map, Mapping):  # stored by hand past `account set`'s check
        log.info("ticket.field_map_ignored", ticket_id=ticket_id, reason="field_map is not an object")
        return {}
    wanted = {field: submitted[name] for name, field in field_map.items() if str(submitted.get(name, "")).strip()}
    if not wanted:
        return {}
    defs = fields_store.definitions(conn, tenant_id)
    changes: dict[str, object] = {}
    for name, raw in wanted.items():
        field = defs.get(name)
        if field is None:
            log.info("ticket.field_not_set", ticket_id=ticket_id, field=name, reason="no such custom field")
            continue
        try:
            changes[name] = from_text(field, str(raw))
        except FieldError as exc:
            log.info("ticket.field_not_set", ticket_id=ticket_id, field=name, reason=exc.message)
    if changes:
        fields_store.set_values(conn, tenant_id, ticket_id, changes, defs)
    return changes
