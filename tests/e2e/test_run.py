"""`switchboard run` on the embedded defaults: a mail in over SMTP, the ticket out over the API."""

import hashlib
import hmac
import json
import signal
import smtplib
import subprocess
import sys
import time
import urllib.request
from email.message import EmailMessage

import pytest
from support import free_port, role_env, wait_for


@pytest.fixture
def running(tmp_path):
    http, smtp_port = free_port(), free_port()
    env = role_env(tmp_path / "data", None, None, http_port=http, smtp_port=smtp_port)
    # Files, not pipes: a full pipe would block the process under test.
    with open(tmp_path / "stdout", "w") as out, open(tmp_path / "stderr", "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "ops.cli", "run"], env=env, stdout=out, stderr=err)
    demo_file = tmp_path / "data" / "demo.json"
    try:
        wait_for(lambda: demo_file.exists() and _healthy(http), timeout=60, what="switchboard run")
        yield proc, json.loads(demo_file.read_text()), http, smtp_port
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def _get(port: int, path: str, key: str) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


def test_mail_in_ticket_out_on_embedded_defaults(running, tmp_path):
    proc, demo, http, smtp_port = running
    assert demo["tenant"] == "demo" and demo["api_key"].startswith("sb_") and "@" in demo["email"]
    msg = EmailMessage()
    msg["From"] = "Li Wei <li.wei@example.cn>"
    msg["To"] = demo["email"]
    msg["Subject"] = "订单 1042 还没有发货"
    msg.set_content("您好，我的订单一周了还没有发货，请帮忙查一下。")
    msg.add_attachment(b"\x89PNG fake screenshot", maintype="image", subtype="png", filename="截图.png")
    started = time.monotonic()
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as client:
        client.send_message(msg)

    listing = wait_for(lambda: _get(http, "/api/v1/tickets", demo["api_key"])["items"], timeout=20,
                       what="the ticket in the API")
    took = time.monotonic() - started
    [ticket] = listing
    assert (ticket["number"], ticket["status"], ticket["channel"]) == (1, "new", "email")
    assert ticket["subject"] == "订单 1042 还没有发货"
    detail = _get(http, f"/api/v1/tickets/{ticket['id']}", demo["api_key"])
    [message] = detail["messages"]
    assert message["sender"] == "li.wei@example.cn" and "请帮忙查一下" in message["text"]
    [attachment] = message["attachments"]
    assert (attachment["filename"], attachment["size"]) == ("截图.png", len(b"\x89PNG fake screenshot"))
    print(f"ingress to API visibility: {took:.2f}s")

    # Embedded Redis keeps its data in the data folder, with AOF on.
    assert (tmp_path / "data" / "redis").is_dir()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    assert "Switchboard is running" in (tmp_path / "stdout").read_text()


def test_demo_call_center_posts_a_missed_call_that_becomes_a_callback_ticket(running):
    # The demo voice account from demo.json, signed as docs/voice.md describes.
    _, demo, http, _ = running
    voice = demo["voice"]
    body = json.dumps({"records": [{"id": "demo-call-1", "status": "missed", "from": "138 0013 8000"}]}).encode()
    ts = str(int(time.time()))
    sig = hmac.new(voice["secret"].encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    req = urllib.request.Request(f"http://127.0.0.1:{http}/voice/{voice['account']}/records", data=body, headers={
        "X-SB-Timestamp": ts, "X-SB-Signature": sig, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        assert (r.status, json.loads(r.read())["records"]) == (202, 1)
    [ticket] = wait_for(lambda: _get(http, "/api/v1/tickets", demo["api_key"])["items"], timeout=20,
                        what="the call's ticket in the API")
    assert (ticket["channel"], ticket["subject"]) == ("voice", "Call back +8613800138000 (missed)")
    assert {"auth_token", "username", "password"} <= set(voice)
