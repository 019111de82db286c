"""``GET /tickets?field.NAME=VALUE``: custom field filters as indexed lookups.

``field.NAME=V`` is equality (a multi-choice field: the ticket's list contains V);
``field.NAME.gte=V`` / ``field.NAME.lte=V`` bound number and date fields. Each filter is an
``IN`` over ``ticket_field_values`` (index tenant, name, value), the same SQL on SQLite and
PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Mapping

from multidict import MultiMapping
from sqlalchemy import ColumnElement, select

from ticket_service import field_schema
from ticket_service.api.errors import invalid_parameter
from ticket_service.field_schema import Field, FieldError
from ticket_service.store.tables import ticket_field_values as values
from ticket_service.store.tables import tickets

PREFIX = "field."
MAX_FILTERS = 10
_OPS = ("gte", "lte")


def names(query: MultiMapping[str]) -> list[str]:
    return [k for k in query if k.startswith(PREFIX)]


def _split(param: str) -> tuple[str, str]:
    """``field.order_no.gte`` -> (``order_no``, ``gte``); ``field.order_no`` -> (``order_no``, ``eq``)."""
    name, _, op = param[len(PREFIX):].partition(".")
    return name, op or "eq"


def conditions(query: MultiMapping[str], tenant_id: int, defs: Mapping[str, Field]) -> list[ColumnElement]:
    """One condition on ``tickets.id`` per ``field.*`` parameter; 400 naming a bad one."""
    params = list(dict.fromkeys(names(query)))
    if len(params) > MAX_FILTERS:
        raise invalid_parameter(params[MAX_FILTERS], f"is one field filter over the limit of {MAX_FILTERS}")
    out = []
    for param in params:
        name, op = _split(param)
        field = defs.get(name)
        if field is None:
            raise invalid_parameter(param[:60], "names no field of this tenant")
        if op != "eq" and (op not in _OPS or field.type not in field_schema.RANGE_TYPES):
            raise invalid_parameter(param[:60], "takes .gte and .lte only on number and date fields")
        # Repeated, each must hold: ``field.topics=a&field.topics=b`` holds both.
        out += [tickets.c.id.in_(_matching(tenant_id, field, op, raw)) for raw in query.getall(param)]
    return out


def _matching(tenant_id: int, field: Field, op: str, raw: str):
    """Ticket ids whose value of ``field`` passes ``op`` for ``raw``."""
    try:
        # A multi-choice filter names one choice the ticket's list contains.
        kind = "choice" if field.type == "multi_choice" else field.type
        stored = field_schema.from_text(Field(field.name, kind, choices=field.choices), raw)
    except FieldError as exc:
        raise invalid_parameter(f"{PREFIX}{field.name}", exc.message.partition(": ")[2]) from None
    return select(values.c.ticket_id).where(values.c.tenant_id == tenant_id, values.c.name == field.name,
                                            _test(field, op, stored))


def _test(field: Field, op: str, stored) -> ColumnElement:
    if field.type in field_schema.RANGE_TYPES:
        number = field_schema.sort_key(field, stored)
        return {"eq": values.c.value_num == number, "gte": values.c.value_num >= number,
                "lte": values.c.value_num <= number}[op]
    return values.c.value_text == stored
