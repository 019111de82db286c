"""Migration 0006 moves each stored rule's policy fields into its ``policy`` column."""

from sqlalchemy import text

from router import snapshot
from ticket_service.store import admin
from ticket_service.store import rules as rules_store
from ticket_service.store.db import Database, migrate

_OLD_RULE = ("INSERT INTO routing_rules (tenant_id, position, name, match, required, preferred, priority, "
             "min_tier, escalate_after_s, widen, created_at) VALUES (:t, 1, 'zh', :match, :required, :preferred, "
             "2, 1, 60, :widen, 1)")


async def test_existing_rules_keep_their_policy_across_the_migration(database_url):
    # A rule stored under 0004's columns reads back as the same rule after 0006.
    db = Database(database_url)
    try:
        await migrate(db, "0004")
        async with db.write() as conn:
            tenant = await admin.create_tenant(conn, "acme")
            await conn.execute(text(_OLD_RULE), {"t": tenant, "match": '{"languages": ["zh"]}',
                                                 "required": '{"chinese": 3}', "preferred": '{"refunds": 1}',
                                                 "widen": '{"min_tier": 0}'})
        await migrate(db, "0006")
        [row] = await db.run_read(rules_store.list_rules, tenant)
        assert row.policy == {"required": {"chinese": 3}, "preferred": {"refunds": 1}, "priority": 2,
                              "min_tier": 1, "escalate_after_s": 60, "widen": {"min_tier": 0}}
        rule = snapshot.rule(row)
        assert (rule.name, dict(rule.match), dict(rule.required), rule.priority, rule.escalate_after_s) == (
            "zh", {"languages": ["zh"]}, {"chinese": 3}, 2, 60)
    finally:
        await db.dispose()
