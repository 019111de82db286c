"""A real Dovecot IMAP server for the tests: throwaway config, static passdb, Maildir."""

from __future__ import annotations

import imaplib
import os
import pwd
import shutil
import signal
import ssl
import subprocess
import tempfile
from pathlib import Path

from support import free_port, wait_for
from tls_certs import Certs

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
DOVEADM = shutil.which("doveadm") or "/usr/bin/doveadm"
PASSWORD = "s3cret-imap"

_CONF = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = {address}
{tls}
auth_mechanisms = plain login
default_internal_user = {internal}
default_login_user = {internal}
default_internal_group = {group}
mail_location = maildir:{root}/mail/%u
mail_uid = {uid}
mail_gid = {gid}
first_valid_uid = {first_uid}
mail_max_userip_connections = 100
# Any user name logs in with the one test password, so each test just picks a fresh name.
passdb {{
  driver = static
  args = password={password}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = {address}
    port = {port}
  }}
  inet_listener imaps {{
    address = {address}
    port = {imaps_port}
    ssl = {imaps_ssl}
  }}
}}
service anvil {{
  chroot =
}}
"""


def _tls(certs: Certs | None, required: bool) -> str:
    if certs is None:
        return "ssl = no\ndisable_plaintext_auth = no"
    return (f"ssl = {'required' if required else 'yes'}\nssl_cert = <{certs.cert}\nssl_key = <{certs.key}\n"
            f"disable_plaintext_auth = {'yes' if required else 'no'}")


class Dovecot:
    """``dovecot -F`` on a free loopback port; users are added to its passwd file on the fly.

    With ``certs`` it offers STARTTLS (``ssl = yes``); ``tls_required`` also refuses any login
    before it (``ssl = required``), which Dovecot enforces only for clients that are not on its
    own address, hence ``address`` (127.0.0.2: the tests connect from 127.0.0.1).
    """

    def __init__(self, certs: Certs | None = None, *, tls_required: bool = False,
                 address: str = "127.0.0.1") -> None:
        self.certs, self.address = certs, address
        self.root = Path(tempfile.mkdtemp(prefix="sb-dovecot-"))
        self.root.chmod(0o755)  # the mail user (nobody, when we are root) walks into it
        self.port = free_port()
        self.imaps_port = free_port() if certs else 0  # TLS from the first byte (RFC 8314)
        self.conf = self.root / "dovecot.conf"
        self.proc: subprocess.Popen | None = None
        if os.geteuid() == 0:
            # Dovecot refuses to keep mail as root; nobody owns the Maildirs instead.
            internal, group, uid, gid, first = "dovenull", "nogroup", 65534, 65534, 1
        else:
            me = pwd.getpwuid(os.geteuid())
            internal, group, uid, gid, first = me.pw_name, None, me.pw_uid, me.pw_gid, me.pw_uid
            group = subprocess.run(["id", "-gn"], capture_output=True, text=True).stdout.strip()
        self.conf.write_text(_CONF.format(root=self.root, internal=internal, group=group, uid=uid, gid=gid,
                                          first_uid=first, port=self.port, password=PASSWORD,
                                          address=address, tls=_tls(certs, tls_required),
                                          imaps_port=self.imaps_port, imaps_ssl="yes" if certs else "no"))
        for sub in ("mail", "run", "state"):
            (self.root / sub).mkdir()
        shutil.chown(self.root / "mail", uid, gid)

    def start(self) -> Dovecot:
        (self.root / "run" / "master.pid").unlink(missing_ok=True)
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._answers, what="dovecot")
        return self

    def stop(self) -> None:
        """Stop the master; its imap processes go with it, dropping every session."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(15)
            self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def _answers(self) -> bool:
        try:
            imaplib.IMAP4(self.address, self.port, timeout=1).logout()
            return True
        except OSError:
            return False

    def add_user(self, name: str) -> str:
        """A user whose INBOX is created empty on first login."""
        return name

    def connect(self, user: str) -> imaplib.IMAP4:
        client = imaplib.IMAP4(self.address, self.port, timeout=10)
        try:
            if self.certs is not None:
                client.starttls(ssl.create_default_context(cafile=str(self.certs.ca)))
            client.login(user, PASSWORD)
        except imaplib.IMAP4.error:
            client.shutdown()
            raise
        return client

    def append(self, user: str, *raws: bytes, folder: str = "INBOX", when: float | None = None) -> list[int]:
        """APPEND mails as another client would; returns their UIDs (APPENDUID, RFC 4315).

        ``when`` (epoch seconds) sets the INTERNALDATE, as for mail delivered while we were away.
        """
        client = self.connect(user)
        try:
            uids = []
            for raw in raws:
                typ, data = client.append(folder, None, imaplib.Time2Internaldate(when) if when else None, raw)
                assert typ == "OK", data
                uids.append(int(data[0].split(b"]")[0].split()[-1]))
            return uids
        finally:
            client.logout()

    def doveadm(self, *args: str) -> str:
        done = subprocess.run([DOVEADM, "-c", str(self.conf), *args], capture_output=True, text=True, check=True)
        return done.stdout

    def status(self, user: str, folder: str = "INBOX") -> dict[str, int]:
        out = self.doveadm("mailbox", "status", "-u", user, "messages uidvalidity uidnext unseen", folder)
        return {k: int(v) for k, v in (item.split("=") for item in out.split()[1:])}

    def session_pids(self) -> list[int]:
        """The imap processes serving logged-in sessions (children of this master)."""
        assert self.proc is not None
        out = subprocess.run(["ps", "-o", "pid=,comm=", "--ppid", str(self.proc.pid)],
                             capture_output=True, text=True).stdout
        return [int(pid) for pid, comm in (line.split(None, 1) for line in out.splitlines()) if comm.strip() == "imap"]
