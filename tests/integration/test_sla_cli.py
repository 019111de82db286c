"""`switchboard calendar|sla add|list|show|remove` against a real database."""

from __future__ import annotations

import asyncio
import io
import json

from core.settings import load
from ops import slacli
from ops.cli import parser
from ticket_service.store import admin
from ticket_service.store.db import Database, migrate


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    # `switchboard` minus its logging setup, which would keep pytest's captured stdout.
    args = parser().parse_args(list(argv))
    assert slacli.handles(args)
    code = slacli.main(load(), args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _tenant(database_url: str) -> None:
    async def run() -> None:
        db = Database(database_url)
        await migrate(db)
        async with db.write() as conn:
            await admin.create_tenant(conn, "acme")
        await db.dispose()
    asyncio.run(run())


def test_calendars_and_policies_from_files_and_stdin(database_url, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(tmp_path))
    _tenant(database_url)
    doc = tmp_path / "cn.json"
    doc.write_text(json.dumps({"name": "cn", "timezone": "Asia/Shanghai", "country": "CN",
                               "hours": {"mon": [["09:00", "12:00"], ["13:30", "18:00"]]},
                               "workdays": ["2026-02-14"]}))
    code, out, _ = _cli(capsys, "calendar", "add", str(doc), "--tenant", "acme")
    assert code == 0 and json.loads(out)["workdays"] == [{"date": "2026-02-14", "as": "mon"}]
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(
        {"name": "std", "targets": {"first_reply_s": 3600}, "calendar": "cn", "pause_in": ["pending"]})))
    code, out, _ = _cli(capsys, "sla", "add", "-", "--tenant", "acme")
    assert code == 0 and json.loads(out)["calendar"] == "cn"
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps({"name": "bad", "targets": {"first_reply_s": 0}})))
    code, out, err = _cli(capsys, "sla", "add", "-", "--tenant", "acme")
    assert (code, out) == (2, "")
    assert "field 'targets.first_reply_s'" in err
    code, _, err = _cli(capsys, "calendar", "remove", "cn", "--tenant", "acme")
    assert code == 2 and "used by SLA policies std" in err
    code, out, _ = _cli(capsys, "sla", "list", "--tenant", "acme")
    assert [p["name"] for p in json.loads(out)] == ["std"]
    assert _cli(capsys, "sla", "remove", "std", "--tenant", "acme")[:2] == (0, json.dumps({"removed": "std"},
                                                                                           indent=2) + "\n")
    assert _cli(capsys, "calendar", "remove", "cn", "--tenant", "acme")[0] == 0
    code, out, _ = _cli(capsys, "calendar", "list", "--tenant", "acme")
    assert (code, json.loads(out)) == (0, [])
    code, _, err = _cli(capsys, "calendar", "show", "cn", "--tenant", "acme")
    assert code == 2 and "not found" in err
