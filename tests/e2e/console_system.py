"""What the console's browser tests share: a running `switchboard run` with an SMTP sink as
its relay, a second tenant made with the CLI, Debian's chromium under Playwright, screenshots."""

from __future__ import annotations

import json
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from playwright.sync_api import expect
from support import free_port, role_env, wait_for

# What a page shows after the workers did their part (a reply sent, a mail routed) comes
# through real processes; on a loaded machine that can take longer than Playwright's 5 s.
expect.set_options(timeout=30_000)

SINK = Path(__file__).resolve().parents[1] / "smtp_sink.py"
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
BETA = {"tenant": "beta", "mailbox": "help@beta.test", "email": "agent@beta.test", "password": "beta-agent-pass-1"}


@dataclass
class System:
    base: str
    smtp_port: int
    sink: Path
    demo: dict
    env: dict

    def mail(self, subject: str, text: str, html: str | None = None, sender: str = "Li Wei <li.wei@example.cn>",
             to: str | None = None) -> None:
        """A mail in over SMTP, as a customer's client sends it."""
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = sender, to or self.demo["email"], subject
        msg.set_content(text)
        if html is not None:
            msg.add_alternative(html, subtype="html")
        with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=10) as client:
            client.send_message(msg)

    def person(self, role: str) -> tuple[str, str]:
        who = self.demo["console"][role]
        return who["email"], who["password"]

    def api(self, path: str) -> dict:
        req = urllib.request.Request(self.base + "/api/v1" + path,
                                     headers={"Authorization": f"Bearer {self.demo['api_key']}"})
        with urllib.request.urlopen(req, timeout=5) as answer:
            return json.loads(answer.read())


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _healthy(base: str) -> bool:
    try:
        with urllib.request.urlopen(base + "/healthz", timeout=1) as answer:
            return answer.status == 200
    except OSError:
        return False


def cli(env: dict, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run([sys.executable, "-m", "ops.cli", *args], env=env, input=stdin, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def start(tmp: Path, **settings):
    """Yield a System: the sink, `switchboard run` relaying to it, tenant beta with its agent."""
    sink_port, http, smtp_port = free_port(), free_port(), free_port()
    sink = subprocess.Popen([sys.executable, str(SINK), "--port", str(sink_port), "--folder", str(tmp / "sink")])
    env = role_env(tmp / "data", None, None, http_port=http, smtp_port=smtp_port,
                   smtp_relay=f"smtp://127.0.0.1:{sink_port}", **settings)
    with open(tmp / "stdout", "w") as out, open(tmp / "stderr", "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "ops.cli", "run"], env=env, stdout=out, stderr=err)
    base = f"http://127.0.0.1:{http}"
    try:
        wait_for(lambda: _accepts(sink_port), what="the SMTP sink")
        demo_file = tmp / "data" / "demo.json"
        wait_for(lambda: demo_file.exists() and _healthy(base), timeout=60, what="switchboard run")
        cli(env, "tenant", "create", BETA["tenant"])
        cli(env, "account", "add", "email", BETA["mailbox"], "--tenant", BETA["tenant"])
        cli(env, "user", "add", BETA["email"], "--tenant", BETA["tenant"], "--role", "agent", "--password-stdin",
            stdin=BETA["password"] + "\n")
        yield System(base, smtp_port, tmp / "sink", json.loads(demo_file.read_text()), env)
    finally:
        for p in (proc, sink):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(30)


def browser(playwright):
    """Debian's chromium: Playwright cannot download its own here."""
    executable = shutil.which("chromium")
    assert executable, "chromium is not installed (make system-deps installs it)"
    return playwright.chromium.launch(executable_path=executable, args=["--no-sandbox", "--disable-gpu"])


def sign_in(page, base: str, email: str, password: str) -> None:
    page.goto(base + "/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def in_language(page, base: str, lang: str, path: str) -> None:
    """Switch with the page's own language link, landing on ``path``."""
    page.goto(f"{base}/lang?to={lang}&next={urllib.request.quote(path)}")
