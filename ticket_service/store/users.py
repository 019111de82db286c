"""Console users: the tenant's agents, with a password hash and a role.

Synchronous functions on a ``Connection`` (``Database.run_read``/``run_write``). Hashing is
the caller's (``console.auth``): the store keeps only what it is given.
"""

from __future__ import annotations

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection, Row

from core.ids import now_ms
from ticket_service.store.admin import NotFound
from ticket_service.store.tables import agents, tenants

ROLES = ("agent", "supervisor", "admin")
USER_COLS = (agents.c.id, agents.c.tenant_id, agents.c.name, agents.c.email, agents.c.role,
             agents.c.password_hash, agents.c.status)


def by_email(conn: Connection, email: str) -> list[Row]:
    """Every agent with this email, across tenants (one person may work for two), oldest first."""
    return conn.execute(select(*USER_COLS, tenants.c.slug.label("tenant_slug"))
                        .join(tenants, tenants.c.id == agents.c.tenant_id)
                        .where(agents.c.email == email.strip().lower()).order_by(agents.c.id)).all()


def id_by_email(conn: Connection, tenant_id: int, email: str) -> int | None:
    return conn.execute(select(agents.c.id).where(agents.c.tenant_id == tenant_id,
                                                  func.lower(agents.c.email) == email.strip().lower())).scalar()


def by_id(conn: Connection, tenant_id: int, agent_id: int) -> Row | None:
    return conn.execute(select(*USER_COLS, tenants.c.slug.label("tenant_slug"),
                               tenants.c.settings.label("tenant_settings"))
                        .join(tenants, tenants.c.id == agents.c.tenant_id)
                        .where(agents.c.tenant_id == tenant_id, agents.c.id == agent_id)).first()


def set_user(conn: Connection, tenant_id: int, email: str, role: str, password_hash: str,
             name: str = "") -> tuple[int, bool]:
    """Create the agent, or set the role and password (and name, if given) of the existing one.

    Returns (agent id, created). A disabled agent stays disabled (``agents.set_disabled``).
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    email = email.strip().lower()
    found = id_by_email(conn, tenant_id, email)
    if found is not None:
        values = {"role": role, "password_hash": password_hash} | ({"name": name} if name else {})
        conn.execute(update(agents).where(agents.c.id == found).values(**values))
        return found, False
    now = now_ms()
    result = conn.execute(insert(agents).values(
        tenant_id=tenant_id, name=name or email.partition("@")[0], email=email, role=role,
        password_hash=password_hash, status="offline", tier=0, skills={}, capacity={},
        created_at=now, status_at=now, last_assigned_at=now))
    return result.inserted_primary_key[0], True


def rehash(conn: Connection, agent_id: int, old_hash: str, new_hash: str) -> None:
    """Store a hash made with newer parameters, unless the password changed meanwhile."""
    conn.execute(update(agents).where(agents.c.id == agent_id, agents.c.password_hash == old_hash)
                 .values(password_hash=new_hash))


def tenant_agents(conn: Connection, tenant_id: int) -> list[Row]:
    """The tenant's agents for a reassign list, by name."""
    return conn.execute(select(agents.c.id, agents.c.name, agents.c.email, agents.c.status)
                        .where(agents.c.tenant_id == tenant_id).order_by(agents.c.name, agents.c.id)).all()


def set_tenant_setting(conn: Connection, slug: str, key: str, value) -> dict:
    """One key of a tenant's settings; returns them all. NotFound for an unknown tenant."""
    row = conn.execute(select(tenants.c.id, tenants.c.settings).where(tenants.c.slug == slug)).first()
    if row is None:
        raise NotFound(f"no tenant {slug!r}")
    settings = {**(row.settings or {}), key: value}
    conn.execute(update(tenants).where(tenants.c.id == row.id).values(settings=settings))
    return settings

