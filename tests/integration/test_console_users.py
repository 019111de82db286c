"""`switchboard user add` and `switchboard tenant set`: console users are the tenant's agents
(one record), passwords stored only as Argon2id hashes; the tenant's time zone is checked."""

import json
import sqlite3
import subprocess
import sys

import argon2
import pytest
from support import role_env


def _cli(env: dict, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ops.cli", *args], env=env, input=stdin, capture_output=True,
                          text=True, timeout=60)


@pytest.fixture
def env(tmp_path):
    env = role_env(tmp_path / "data", None, f"sqlite:///{tmp_path / 'sb.db'}", secret_key="k" * 32)
    assert _cli(env, "tenant", "create", "acme").returncode == 0
    return env


def _agents(tmp_path) -> list[tuple]:
    with sqlite3.connect(tmp_path / "sb.db") as db:
        return db.execute("SELECT email, name, role, password_hash FROM agents ORDER BY id").fetchall()


def test_user_add_creates_the_agent_and_a_second_run_updates_the_same_record(env, tmp_path):
    done = _cli(env, "user", "add", "Mei@Acme.test", "--tenant", "acme", "--role", "agent", "--password-stdin",
                "--name", "Han Mei", stdin="first-pass-123\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("user mei@acme.test of acme created: agent")
    [(email, name, role, hashed)] = _agents(tmp_path)
    assert (email, name, role) == ("mei@acme.test", "Han Mei", "agent")
    assert hashed.startswith("$argon2id$") and "first-pass-123" not in hashed
    assert argon2.PasswordHasher().verify(hashed, "first-pass-123")
    done = _cli(env, "user", "add", "mei@acme.test", "--tenant", "acme", "--role", "supervisor",
                "--password-stdin", stdin="second-pass-456\n")
    assert done.returncode == 0, done.stderr
    [(email, name, role, hashed)] = _agents(tmp_path)
    assert (email, name, role) == ("mei@acme.test", "Han Mei", "supervisor")
    assert argon2.PasswordHasher().verify(hashed, "second-pass-456")


def test_user_add_refuses_a_short_password_an_unknown_tenant_and_a_bad_role(env, tmp_path):
    done = _cli(env, "user", "add", "a@acme.test", "--tenant", "acme", "--role", "agent", "--password-stdin",
                stdin="short\n")
    assert done.returncode == 1 and "at least 8 characters" in done.stderr
    done = _cli(env, "user", "add", "a@acme.test", "--tenant", "nope", "--role", "agent", "--password-stdin",
                stdin="long-enough-1\n")
    assert done.returncode == 1 and "no tenant 'nope'" in done.stderr
    done = _cli(env, "user", "add", "a@acme.test", "--tenant", "acme", "--role", "root", "--password-stdin",
                stdin="long-enough-1\n")
    assert done.returncode == 2 and "invalid choice: 'root'" in done.stderr
    assert _agents(tmp_path) == []


def test_tenant_set_timezone_is_stored_and_an_unknown_zone_refused(env, tmp_path):
    done = _cli(env, "tenant", "set", "acme", "timezone=Asia/Shanghai")
    assert (done.returncode, done.stdout.strip()) == (0, "tenant acme: timezone=Asia/Shanghai")
    done = _cli(env, "tenant", "set", "acme", "timezone=Mars/Olympus")
    assert done.returncode == 1 and "not an IANA time zone" in done.stderr
    done = _cli(env, "tenant", "set", "acme", "colour=blue")
    assert done.returncode == 1 and "settable are timezone=…" in done.stderr
    with sqlite3.connect(tmp_path / "sb.db") as db:
        [(settings,)] = db.execute("SELECT settings FROM tenants WHERE slug = 'acme'").fetchall()
    assert json.loads(settings) == {"timezone": "Asia/Shanghai"}
