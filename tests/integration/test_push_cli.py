"""`switchboard account add` registers push-channel accounts with their settings."""

import json
import sqlite3
import subprocess
import sys

from support import role_env


def test_account_add_takes_repeated_settings_as_json_or_text(tmp_path):
    env = role_env(tmp_path / "data", None, f"sqlite:///{tmp_path / 'sb.db'}")

    def cli(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "ops.cli", *args], env=env, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    cli("tenant", "create", "acme")
    out = cli("account", "add", "wechat", "acme-mp", "--tenant", "acme", "--setting", "token=abc123",
              "--setting", "mode=safe", "--setting", "max_body=4096")
    assert "wechat account acme-mp added" in out
    cli("account", "add", "webform", "contact", "--tenant", "acme", "--setting", 'cors_origins=["https://shop.example"]')
    with sqlite3.connect(tmp_path / "sb.db") as db:
        rows = dict(db.execute("SELECT address, settings FROM channel_accounts ORDER BY id").fetchall())
    assert json.loads(rows["acme-mp"]) == {"token": "abc123", "mode": "safe", "max_body": 4096}
    assert json.loads(rows["contact"]) == {"cors_origins": ["https://shop.example"]}
