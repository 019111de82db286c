"""`switchboard connector imap` processes against a real Dovecot: SIGKILL, and sharing mailboxes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import redis
from sqlalchemy import func, select
from support import make_mail, query, role_env, wait_for

from core import keys
from core.credentials import unseal
from core.envelope import Envelope
from ticket_service.store.tables import channel_accounts, messages, tickets

SWITCHBOARD = [sys.executable, "-m", "ops.cli"]
SECRET = "imap-process-secret"
PASSWORD = "s3cret-imap"


def _cli(env: dict, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run([*SWITCHBOARD, *args], env=env, input=stdin, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout




def _setup(env: dict, dovecot, mailboxes: dict[str, str]) -> None:
    """Tenant acme and one IMAP account per address -> Dovecot user, registered by the CLI."""
    _cli(env, "tenant", "create", "acme")
    for address, user in mailboxes.items():
        out = _cli(env, "account", "imap", address, "--tenant", "acme", "--host", "127.0.0.1",
                   "--port", str(dovecot.port), "--user", user, "--security", "none", "--password-stdin",
                   stdin=PASSWORD + "\n")
        assert out.startswith(f"email account {address} fetches {user}@127.0.0.1:{dovecot.port}/INBOX")


def _poller(env: dict, log) -> subprocess.Popen:
    return subprocess.Popen([*SWITCHBOARD, "connector", "imap"], env=env, stdout=subprocess.DEVNULL, stderr=log)


def _uids(client: redis.Redis) -> list[tuple[str, int]]:
    out = []
    for _, fields in client.xrange("ingest.email"):
        env = Envelope.unpack(fields[b"e"])
        out.append((env.account, int(env.meta["imap_uid"])))
    return out


def test_account_password_is_stored_encrypted(database_url, redis_url, tmp_path, dovecot, imap_user):
    # The CLI seals the password with the secret_key; the row never holds it in clear.
    env = role_env(tmp_path, redis_url, database_url, secret_key=SECRET)
    _setup(env, dovecot, {"help@acme.test": imap_user})
    [(settings, secret_enc)] = query(database_url, select(channel_accounts.c.settings, channel_accounts.c.secret_enc))
    assert settings["imap"] == {"host": "127.0.0.1", "port": dovecot.port, "user": imap_user, "folder": "INBOX",
                                "security": "none", "tls_verify": True, "after": "leave", "move_to": "",
                                "start": "all"}
    assert PASSWORD not in secret_enc
    assert unseal(SECRET, secret_enc) == PASSWORD
    # No SWITCHBOARD_SECRET_KEY: sealed with the data folder's key, the one `switchboard run` there uses.
    _cli(role_env(tmp_path, redis_url, database_url), "account", "imap", "x@acme.test", "--tenant", "acme",
         "--host", "h", "--user", "u", "--password-stdin", stdin="p-local\n")
    [(sealed,)] = query(database_url, select(channel_accounts.c.secret_enc)
                        .where(channel_accounts.c.address == "x@acme.test"))
    assert "p-local" not in sealed and unseal((tmp_path / "secret_key").read_text().strip(), sealed) == "p-local"


def test_sigkill_between_fetch_and_checkpoint_loses_and_duplicates_nothing(
    database_url, redis_url, tmp_path, dovecot, imap_user
):
    # Kill -9 while the poller is fetching; the restart picks up at the checkpoint.
    env = role_env(tmp_path, redis_url, database_url, secret_key=SECRET, imap_lease_ms=1500,
                   imap_refresh_s=0.2, imap_timeout_s=5, imap_backoff_max_s=1)
    _setup(env, dovecot, {"help@acme.test": imap_user})
    dovecot.append(imap_user, *[make_mail(subject=f"order {i}", sender=f"c{i}@example.cn")[0] for i in range(150)])
    client = redis.Redis.from_url(redis_url)
    with open(tmp_path / "poller.log", "wb") as log:
        proc = _poller(env, log)
        wait_for(lambda: client.xlen("ingest.email") >= 15, timeout=60, what="first envelopes")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        at_kill = client.xlen("ingest.email")
        assert at_kill < 150, "the kill must land mid-mailbox for this test to mean anything"
        proc = _poller(env, log)
        try:
            wait_for(lambda: client.xlen("ingest.email") >= 150, timeout=60, what="all 150 envelopes")
            time.sleep(1.0)  # a duplicate, if any, would arrive now
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
    assert sorted(uid for _, uid in _uids(client)) == list(range(1, 151))
    assert client.hget(keys.imap_checkpoint_key(1, "INBOX"), "uid") == b"150"
    assert client.get(keys.imap_lease_key(1, "INBOX")) is None  # released on SIGTERM
    _cli(env, "normalizer", "--drain")
    assert query(database_url, select(func.count(tickets.c.id))) == [(150,)]
    assert query(database_url, select(func.count(messages.c.id))) == [(150,)]


def test_pollers_share_mailboxes_and_take_over_a_dead_ones(database_url, redis_url, tmp_path, dovecot):
    # Two instances split three mailboxes; one is killed, the other takes all three over.
    users = {f"box{i}@acme.test": dovecot.add_user(f"box{i}-{tmp_path.name}@acme.test") for i in range(3)}
    env = role_env(tmp_path, redis_url, database_url, secret_key=SECRET, imap_lease_ms=1500,
                   imap_refresh_s=0.2, imap_timeout_s=5, imap_backoff_max_s=1)
    _setup(env, dovecot, users)
    client = redis.Redis.from_url(redis_url)
    leases = [keys.imap_lease_key(i, "INBOX") for i in (1, 2, 3)]

    def holders() -> list[str]:
        return [(client.get(k) or b"").decode() for k in leases]

    with open(tmp_path / "pollers.log", "wb") as log:
        procs = {p.pid: p for p in (_poller(env, log), _poller(env, log))}
        try:
            wait_for(lambda: all(holders()) and len(set(holders())) == 2, timeout=30, what="mailboxes split 2/1")
            checked = subprocess.run([*SWITCHBOARD, "ops", "check", "connector"], env=env, timeout=60)
            assert checked.returncode == 0  # the container health check sees the pollers' heartbeats
            for user in users.values():
                dovecot.append(user, make_mail(subject=f"first to {user}")[0])
            wait_for(lambda: client.xlen("ingest.email") == 3, timeout=30, what="3 first mails")
            victim_owner = holders()[0]
            victim = next(pid for pid in procs if f"-{pid}-" in victim_owner)
            killed = procs.pop(victim)
            killed.send_signal(signal.SIGKILL)
            killed.wait()
            [survivor] = procs.values()
            wait_for(lambda: set(holders()) == {h for h in holders() if f"-{survivor.pid}-" in h} and all(holders()),
                     timeout=30, what="survivor holds all three")
            for user in users.values():
                dovecot.append(user, make_mail(subject=f"second to {user}")[0])
            wait_for(lambda: client.xlen("ingest.email") == 6, timeout=30, what="3 second mails")
            time.sleep(1.0)
        finally:
            for p in procs.values():
                p.send_signal(signal.SIGTERM)
                p.wait(30)
    assert sorted(_uids(client)) == [(a, u) for a in ("1", "2", "3") for u in (1, 2)]
