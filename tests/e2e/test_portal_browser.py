"""The status page in a real browser (Debian's chromium driven by Playwright) against
`switchboard run`: a mail opens a ticket, the API issues its link, the customer opens it, adds a
message, and sees it on the page once the normalizer stored it; the agent, signed in to the
console with the ticket open, sees it arrive without reloading."""

import json
import signal
import smtplib
import subprocess
import sys
import urllib.request
from email.message import EmailMessage
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright
from support import free_port, role_env, wait_for

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
# As the machine's own browser checks run it: headless, no sandbox as root, no calls home.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


@pytest.fixture
def running(tmp_path):
    http, smtp_port = free_port(), free_port()
    env = role_env(tmp_path / "data", None, None, http_port=http, smtp_port=smtp_port)
    with open(tmp_path / "stdout", "w") as out, open(tmp_path / "stderr", "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "ops.cli", "run"], env=env, stdout=out, stderr=err)
    demo_file = tmp_path / "data" / "demo.json"
    try:
        wait_for(lambda: demo_file.exists() and _api(http, "GET", "/healthz") is not None, timeout=60,
                 what="switchboard run")
        yield json.loads(demo_file.read_text()), http, smtp_port
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def _api(port: int, method: str, path: str, key: str = ""):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                 headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            body = r.read()
            return json.loads(body) if body[:1] == b"{" else body
    except OSError:
        return None


def _mail_in(demo: dict, smtp_port: int) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "Li Wei <li.wei@example.cn>", demo["email"], "订单 1042 还没有发货"
    msg.set_content("您好，我的订单一周了还没有发货。")
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as client:
        client.send_message(msg)


def test_the_customer_opens_the_link_adds_a_message_and_sees_it(running):
    demo, http, smtp_port = running
    _mail_in(demo, smtp_port)
    [ticket] = wait_for(lambda: _api(http, "GET", "/api/v1/tickets", demo["api_key"])["items"], timeout=20,
                        what="the ticket")
    link = _api(http, "POST", f"/api/v1/tickets/{ticket['id']}/portal-link", demo["api_key"])["url"]
    assert link.startswith(f"http://127.0.0.1:{http}/portal/")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            agent = browser.new_page(locale="en-US")
            person = demo["console"]["agent"]
            agent.goto(f"http://127.0.0.1:{http}/login")
            agent.fill("input[name=email]", person["email"])
            agent.fill("input[name=password]", person["password"])
            agent.click("button[type=submit]")
            agent.goto(f"http://127.0.0.1:{http}/tickets/{ticket['number']}")
            expect(agent.locator("main")).to_contain_text("您好，我的订单一周了还没有发货。")
            page = browser.new_page(locale="zh-CN", extra_http_headers={"Accept-Language": "zh-CN,zh;q=0.9"})
            blocked = []
            page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
            page.goto(link)
            assert page.locator("h1.subject").inner_text() == "订单 1042 还没有发货"
            assert page.locator(".from-customer .text").inner_text() == "您好，我的订单一周了还没有发货。"
            # Our stylesheet applied under the CSP (style-src 'self'): the sheet's background.
            assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(244, 245, 247)"
            page.fill("#text", "补充：请改送到公司地址。")
            page.click("button[type=submit]")
            assert "sent=1" in page.url and page.locator("p.notice").inner_text().startswith("谢谢")

            def shown() -> bool:
                page.reload()
                return page.locator(".from-customer .text", has_text="补充：请改送到公司地址。").count() == 1

            wait_for(shown, timeout=20, interval=0.3, what="the message on the page")
            # The agent's open ticket page took it in live (server-sent events), no reload.
            expect(agent.locator("main")).to_contain_text("补充：请改送到公司地址。", timeout=30_000)
            SCREENSHOTS.mkdir(exist_ok=True)
            agent.screenshot(path=str(SCREENSHOTS / "portal-agent-view.png"), full_page=True)
            SCREENSHOTS.mkdir(exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "portal.png"), full_page=True)
            assert blocked == []
        finally:
            browser.close()
    stored = _api(http, "GET", f"/api/v1/tickets/{ticket['id']}", demo["api_key"])
    assert [(m["channel"], m["text"]) for m in stored["messages"] if m["direction"] == "in"] == [
        ("email", "您好，我的订单一周了还没有发货。"), ("portal", "补充：请改送到公司地址。")]
