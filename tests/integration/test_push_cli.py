"""`switchboard account add` registers push-channel accounts with their settings."""

import json
import sqlite3
import subprocess
import sys

from support import role_env

from core.credentials import unseal


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
        rows = {a: (json.loads(s), e) for a, s, e in db.execute("SELECT address, settings, secret_enc FROM channel_accounts")}
    # The token is sealed with the data folder's key (the one `switchboard run` there uses).
    settings, sealed = rows["acme-mp"]
    assert settings == {"mode": "safe", "max_body": 4096} and "abc123" not in sealed
    assert json.loads(unseal((tmp_path / "data" / "secret_key").read_text().strip(), sealed)) == {"token": "abc123"}
    assert rows["contact"] == ({"cors_origins": ["https://shop.example"]}, None)


def test_a_wechat_account_is_safe_mode_unless_another_mode_is_asked_for(tmp_path):
    # Only safe mode's msg_signature covers the message, so it is what an account gets by default.
    env = role_env(tmp_path / "data", None, f"sqlite:///{tmp_path / 'sb.db'}")
    for args in (("tenant", "create", "acme"),
                 ("account", "add", "wechat", "acme-new", "--tenant", "acme", "--setting", "token=abc123"),
                 ("account", "add", "wechat", "acme-old", "--tenant", "acme", "--setting", "token=abc123",
                  "--setting", "mode=compatible")):
        done = subprocess.run([sys.executable, "-m", "ops.cli", *args], env=env, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stderr
    with sqlite3.connect(tmp_path / "sb.db") as db:
        rows = {a: json.loads(s) for a, s in db.execute("SELECT address, settings FROM channel_accounts")}
    # The token itself is sealed (secret_enc), so only the mode is readable.
    assert rows == {"acme-new": {"mode": "safe"}, "acme-old": {"mode": "compatible"}}
    # An older account is moved to safe mode by a command, not by editing rows.
    switched = subprocess.run([sys.executable, "-m", "ops.cli", "account", "set", "acme-old", "mode=safe",
                               "--channel", "wechat"], env=env, capture_output=True, text=True, timeout=60)
    assert (switched.returncode, switched.stdout.strip()) == (0, "wechat account acme-old: mode=safe")
    with sqlite3.connect(tmp_path / "sb.db") as db:
        modes = {a: json.loads(s)["mode"] for a, s in db.execute("SELECT address, settings FROM channel_accounts")}
    assert modes == {"acme-new": "safe", "acme-old": "safe"}
