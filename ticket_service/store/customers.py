"""A message's sender -> one customer, across channels: every identity it shows is linked."""

from __future__ import annotations

from sqlalchemy import and_, insert, or_, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from ticket_service.store.tables import customers, identities

Identity = tuple[str, str, str]  # kind, scope, value


async def resolve(
    conn: AsyncConnection, tenant_id: int, primary: Identity, also: list[Identity], name: str, now: int
) -> Row:
    """The customer of the first known identity (the sender's own first), created on first contact.

    Identities not yet known are added to that customer. One already held by another customer
    stays there: two records of one person are merged by an agent, never silently.
    """
    wanted = list(dict.fromkeys([primary, *also]))
    rows = (
        await conn.execute(
            select(identities.c.kind, identities.c.scope, identities.c.value, identities.c.customer_id).where(
                identities.c.tenant_id == tenant_id,
                or_(*(and_(identities.c.kind == k, identities.c.scope == s, identities.c.value == v)
                      for k, s, v in wanted)),
            )
        )
    ).all()
    known = {(r.kind, r.scope, r.value): r.customer_id for r in rows}
    owner = next((known[i] for i in wanted if i in known), None)
    if owner is None:
        owner = (
            await conn.execute(insert(customers).values(tenant_id=tenant_id, name=name[:200], created_at=now))
        ).inserted_primary_key[0]
    missing = [i for i in wanted if i not in known]
    if missing:
        # A concurrent first contact of the same identity fails here on the unique key; the
        # caller retries the transaction and then finds the winner's customer.
        await conn.execute(insert(identities), [
            dict(tenant_id=tenant_id, customer_id=owner, kind=k, scope=s, value=v, created_at=now)
            for k, s, v in missing
        ])
    return (await conn.execute(select(customers.c.id, customers.c.vip_tier).where(customers.c.id == owner))).one()


async def vip_tier(conn: AsyncConnection, customer_id: int | None) -> int:
    if customer_id is None:
        return 0
    row = (await conn.execute(select(customers.c.vip_tier).where(customers.c.id == customer_id))).first()
    return row.vip_tier if row else 0
