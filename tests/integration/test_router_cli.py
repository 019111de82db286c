"""`switchboard agent|rule|customer …` and `switchboard router explain` against a real database."""

from __future__ import annotations

import asyncio
import json

from connectors.registry import capacity_classes
from core.ids import now_ms
from core.settings import load
from ops import routingcli as routercli
from ops.cli import parser
from router.batch import Assigner
from ticket_service.store import admin
from ticket_service.store import tickets as ticket_store
from ticket_service.store.db import Database, migrate


def _cli(capsys, *argv: str) -> tuple[int, str]:
    # `switchboard` minus its logging setup, which would keep pytest's captured stdout.
    args = parser().parse_args(list(argv))
    assert routercli.handles(args)
    code = routercli.main(load(), args)
    return code, capsys.readouterr().out


def _tenant(database_url: str) -> None:
    async def run() -> None:
        db = Database(database_url)
        await migrate(db)
        async with db.write() as conn:
            await admin.create_tenant(conn, "acme")
        await db.dispose()

    asyncio.run(run())


def _ticket_routed(database_url: str, email: str) -> int:
    async def run() -> int:
        db = Database(database_url)
        try:
            async with db.write() as conn:
                tenant = await admin.tenant_id(conn, "acme")
                account = await admin.add_account(conn, tenant, "email", "help@acme.test")
                customer = await conn.run_sync(ticket_store.resolve_customer, tenant, "email", "", email, "", now_ms())
                ticket_id, _ = await conn.run_sync(ticket_store.create_ticket, tenant_id=tenant, subject="Contract", status="new", channel="email",
                    account_id=account, priority=0, customer_id=customer.id, now=now_ms())
            await Assigner(db, 600_000, capacity_classes()).route(ticket_id)
            return ticket_id
        finally:
            await db.dispose()

    return asyncio.run(run())


def test_agents_rules_vip_and_explain_from_the_command_line(database_url, tmp_path, monkeypatch, capsys):
    # The README demo's commands, and the explanation they lead to.
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(tmp_path))
    _tenant(database_url)
    code, out = _cli(capsys, "agent", "add", "Li", "li@acme.test", "--tenant", "acme", "--skills",
                     "chinese=5,refunds=2", "--capacity", "email=2", "--status", "online")
    assert code == 0 and json.loads(out)["skills"] == {"chinese": 5, "refunds": 2}
    _cli(capsys, "agent", "add", "Sam", "sam@acme.test", "--tenant", "acme", "--tier", "2",
         "--capacity", "email=1", "--status", "online")
    code, out = _cli(capsys, "rule", "add", "vip", "--tenant", "acme", "--min-customer-tier", "1",
                     "--min-tier", "2", "--escalate-after", "600", "--widen-min-tier", "0")
    assert code == 0 and json.loads(out)["match"] == {"min_customer_tier": 1}
    code, out = _cli(capsys, "customer", "vip", "Boss@BigCorp.example", "2", "--tenant", "acme")
    assert json.loads(out)["vip_tier"] == 2
    ticket_id = _ticket_routed(database_url, "boss@bigcorp.example")
    capsys.readouterr()  # the router's own log lines
    code, out = _cli(capsys, "router", "explain", str(ticket_id))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith(f"ticket {ticket_id} (#1) new") and lines[0].endswith("assignee 2")
    assert "  rule 'vip': hit" in lines
    assert "  excluded  Li (1): tier 0 < 2" in lines
    code, out = _cli(capsys, "router", "explain", "1", "--tenant", "acme", "--json")
    assert json.loads(out)["decisions"][0]["outcome"] == "assigned"
    assert _cli(capsys, "router", "explain", "99")[0] == 1
    code, out = _cli(capsys, "rule", "list", "--tenant", "acme")
    assert [r["name"] for r in json.loads(out)] == ["vip"]
