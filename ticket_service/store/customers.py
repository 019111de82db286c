"""A message's sender -> one customer, across channels: every identity it shows is linked.

Synchronous, like ``tickets``: it runs inside the normalizer's batch transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.engine import Connection

from ticket_service.store.compiled import Statement
from ticket_service.store.tables import customers, identities

Identity = tuple[str, str, str]  # kind, scope, value

# Candidates by value; kind and scope are matched in Python (one statement for any count).
_CANDIDATES = (
    select(identities.c.kind, identities.c.scope, identities.c.value, identities.c.customer_id,
           customers.c.vip_tier)
    .join(customers, customers.c.id == identities.c.customer_id)
    .where(identities.c.tenant_id == bindparam("tenant_id"))
)
_IDENTITIES = _CANDIDATES.where(identities.c.value.in_(bindparam("values", expanding=True)))
# The common case of one value without the cost of expanding an IN list.
_IDENTITY = Statement(_CANDIDATES.where(identities.c.value == bindparam("value")))
_INSERT_CUSTOMER = Statement(insert(customers))
_INSERT_IDENTITY = Statement(insert(identities))
_VIP_TIER = Statement(select(customers.c.vip_tier).where(customers.c.id == bindparam("id")))


@dataclass(slots=True)
class Customer:
    id: int
    vip_tier: int


def resolve(conn: Connection, tenant_id: int, primary: Identity, also: list[Identity], name: str, now: int) -> Customer:
    """The customer of the first known identity (the sender's own first), created on first contact.

    Identities not yet known are added to that customer. One already held by another customer
    stays there: two records of one person are merged by an agent, never silently.
    """
    wanted = list(dict.fromkeys([primary, *also]))
    values = list({v for _, _, v in wanted})
    if len(values) == 1:
        rows = _IDENTITY.all(conn, {"tenant_id": tenant_id, "value": values[0]})
    else:
        rows = conn.execute(_IDENTITIES, {"tenant_id": tenant_id, "values": values}).all()
    known = {(r.kind, r.scope, r.value): (r.customer_id, r.vip_tier) for r in rows}
    owner = next((known[i] for i in wanted if i in known), None)
    if owner is None:
        owner = (_INSERT_CUSTOMER.insert(conn, {"tenant_id": tenant_id, "name": name[:200], "created_at": now}), 0)
    missing = [i for i in wanted if i not in known]
    if missing:
        # A concurrent first contact of the same identity fails here on the unique key; the
        # caller retries the transaction and then finds the winner's customer.
        for k, s, v in missing:
            _INSERT_IDENTITY.insert(conn, {"tenant_id": tenant_id, "customer_id": owner[0], "kind": k, "scope": s,
                                           "value": v, "created_at": now})
    return Customer(*owner)


def vip_tier(conn: Connection, customer_id: int | None) -> int:
    if customer_id is None:
        return 0
    row = _VIP_TIER.first(conn, {"id": customer_id})
    return row.vip_tier if row else 0


_SET_VIP_TIER = Statement(update(customers).where(customers.c.id == bindparam("b_customer"))
                          .values(vip_tier=bindparam("b_tier")))


def set_vip_tier(conn: Connection, customer_id: int, tier: int) -> None:
    _SET_VIP_TIER.rowcount(conn, {"b_customer": customer_id, "b_tier": tier})
