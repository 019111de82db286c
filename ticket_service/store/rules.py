"""A tenant's routing rules, in table order: the first that matches a ticket decides it.

A rule is its ``match`` conditions and its ``policy``: the requirements and escalation it
sets (``rule_schema.POLICY_FIELDS``). The policy is one JSON column, so a new policy field
needs no migration.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.engine import Connection, Row

from ticket_service.rule_schema import MAX_RULES, POLICY_DEFAULTS, POLICY_FIELDS, RuleError
from ticket_service.store.compiled import Statement
from ticket_service.store.tables import routing_rules

B = bindparam
_RULES = Statement(select(routing_rules).where(routing_rules.c.tenant_id == B("tenant_id"))
                   .order_by(routing_rules.c.position, routing_rules.c.id))
_LAST_POSITION = Statement(select(func.max(routing_rules.c.position).label("last"))
                           .where(routing_rules.c.tenant_id == B("tenant_id")))
_MAKE_ROOM = Statement(
    update(routing_rules)
    .where(routing_rules.c.tenant_id == B("b_tenant"), routing_rules.c.position >= B("b_position"))
    .values(position=routing_rules.c.position + 1)
)
_COUNT_RULES = Statement(select(func.count().label("n")).select_from(routing_rules)
                         .where(routing_rules.c.tenant_id == B("tenant_id")))
_ADD_RULE = insert(routing_rules)
_DELETE_RULE = Statement(delete(routing_rules).where(routing_rules.c.tenant_id == B("b_tenant"),
                                                     routing_rules.c.id == B("b_rule")))


def list_rules(conn: Connection, tenant_id: int) -> list[Row]:
    return _RULES.all(conn, {"tenant_id": tenant_id})


def fields(row: Row) -> dict[str, Any]:
    """A stored rule as the flat fields the API and the schema speak of (policy spread out)."""
    return {"name": row.name, "position": row.position, "match": row.match, **POLICY_DEFAULTS,
            **(row.policy or {})}


def add_rule(conn: Connection, tenant_id: int, now: int, position: int | None = None, **values: Any) -> int:
    """Insert a rule at ``position`` (1 = first), or last; later rules move down one.

    ``values`` are the flat fields (``name``, ``match`` and the policy fields). Raises
    ``RuleError`` when the tenant already has ``MAX_RULES``: every rule is looked at for
    every ticket, and each decision's trace lists them.
    """
    if _COUNT_RULES.scalar(conn, {"tenant_id": tenant_id}) >= MAX_RULES:
        raise RuleError(f"a tenant has at most {MAX_RULES} routing rules", 400, "too_many_rules")
    last = _LAST_POSITION.scalar(conn, {"tenant_id": tenant_id}) or 0
    if position is None or position > last:
        position = last + 1
    else:
        position = max(position, 1)
        _MAKE_ROOM.rowcount(conn, {"b_tenant": tenant_id, "b_position": position})
    policy = {**POLICY_DEFAULTS, **{k: v for k, v in values.items() if k in POLICY_FIELDS}}
    result = conn.execute(_ADD_RULE, {"tenant_id": tenant_id, "position": position, "created_at": now,
                                      "name": values["name"], "match": values.get("match", {}),
                                      "policy": policy})
    return result.inserted_primary_key[0]


def delete_rule(conn: Connection, tenant_id: int, rule_id: int) -> bool:
    return _DELETE_RULE.rowcount(conn, {"b_tenant": tenant_id, "b_rule": rule_id}) == 1
