"""`switchboard trigger|automation add|list|show|move|remove` against a real database."""

from __future__ import annotations

import asyncio
import io
import json

from core.settings import load
from ops import rulescli
from ops.cli import parser
from ticket_service.store import admin
from ticket_service.store.db import Database, migrate


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    # `switchboard` minus its logging setup, which would keep pytest's captured stdout.
    args = parser().parse_args(list(argv))
    assert rulescli.handles(args)
    code = rulescli.main(load(), args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _tenants(database_url: str) -> None:
    async def run() -> None:
        db = Database(database_url)
        await migrate(db)
        async with db.write() as conn:
            await admin.create_tenant(conn, "acme")
            await admin.create_tenant(conn, "globex")
        await db.dispose()

    asyncio.run(run())


def test_triggers_and_automations_from_the_command_line(database_url, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(tmp_path))
    _tenants(database_url)
    then = tmp_path / "then.json"
    then.write_text(json.dumps([{"type": "reply", "template": "Ticket #{{ ticket.number }} is open."}]))
    cond = {"all": [{"field": "channel", "op": "is", "value": "email"}]}
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(cond)))
    code, out, _ = _cli(capsys, "trigger", "add", "ack", "--tenant", "acme", "--on", "ticket.created",
                        "--if", "-", "--then", str(then))
    first = json.loads(out)
    assert code == 0 and (first["name"], first["on"], first["if"], first["position"]) == (
        "ack", ["ticket.created"], cond, 1)
    code, out, _ = _cli(capsys, "trigger", "add", "tag", "--tenant", "acme", "--on", "message.added",
                        "--then", str(then), "--position", "1")
    second = json.loads(out)
    assert _cli(capsys, "trigger", "move", str(first["id"]), "1", "--tenant", "acme")[0] == 0
    code, out, _ = _cli(capsys, "trigger", "list", "--tenant", "acme")
    assert [(t["name"], t["position"]) for t in json.loads(out)] == [("ack", 1), ("tag", 2)]
    assert json.loads(_cli(capsys, "trigger", "show", str(second["id"]), "--tenant", "acme")[1])["on"] == [
        "message.added"]
    # Another tenant's id is not found; a bad definition names its path; stored nothing.
    code, _, err = _cli(capsys, "trigger", "remove", str(first["id"]), "--tenant", "globex")
    assert (code, err.strip()) == (1, f"switchboard: no trigger {first['id']}")
    then.write_text(json.dumps([{"type": "set_status", "status": "gone"}]))
    code, _, err = _cli(capsys, "automation", "add", "close", "--tenant", "acme", "--then", str(then))
    assert (code, err.strip().split(":")[:2]) == (2, ["switchboard", " if.all"])
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(
        {"all": [{"field": "hours_since_solved", "op": "gt", "value": 48}]})))
    code, _, err = _cli(capsys, "automation", "add", "close", "--tenant", "acme", "--if", "-", "--then", str(then))
    assert (code, err.strip()) == (2, "switchboard: then[0].status: one of new, open, pending, solved, closed")
    assert json.loads(_cli(capsys, "automation", "list", "--tenant", "acme")[1]) == []
    assert _cli(capsys, "trigger", "remove", str(first["id"]), "--tenant", "acme")[0] == 0
    assert [t["name"] for t in json.loads(_cli(capsys, "trigger", "list", "--tenant", "acme")[1])] == ["tag"]


def test_a_set_field_is_checked_against_the_tenants_fields_from_the_command_line(database_url, tmp_path,
                                                                                 monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(tmp_path))
    _tenants(database_url)
    then = tmp_path / "then.json"
    then.write_text(json.dumps([{"type": "set_field", "name": "source", "value": "shop"}]))
    code, _, err = _cli(capsys, "trigger", "add", "shop", "--tenant", "acme", "--on", "ticket.created",
                        "--then", str(then))
    assert (code, err.strip()) == (2, "switchboard: then[0].name: source is not a custom field of this tenant")
    assert json.loads(_cli(capsys, "trigger", "list", "--tenant", "acme")[1]) == []
