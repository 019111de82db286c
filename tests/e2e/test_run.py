"""`switchboard run` on the embedded defaults: a mail in over SMTP, the ticket out over the API."""

import email
import email.policy
import hashlib
import hmac
import json
import re
import signal
import smtplib
import sqlite3
import stat
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from email.message import EmailMessage

import pytest
from support import free_port, role_env, wait_for
from twilio.request_validator import RequestValidator

from connectors.wechat.verify import sign
from core.credentials import unseal


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


def _post(port: int, path: str, key: str, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), method="POST",
                                 headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.status, json.loads(r.read())


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _cli(env: dict, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ops.cli", *args], env=env, input=stdin, capture_output=True,
                          text=True, timeout=60)


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
    [message] = [m for m in detail["messages"] if m["direction"] == "in"]  # the demo's acknowledgement aside
    assert message["sender"] == "li.wei@example.cn" and "请帮忙查一下" in message["text"]
    [attachment] = message["attachments"]
    assert (attachment["filename"], attachment["size"]) == ("截图.png", len(b"\x89PNG fake screenshot"))
    print(f"ingress to API visibility: {took:.2f}s")

    # Embedded Redis keeps its data in the data folder, with AOF on.
    assert (tmp_path / "data" / "redis").is_dir()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    assert "Switchboard is running" in (tmp_path / "stdout").read_text()


def test_a_trigger_defined_through_the_api_tags_the_ticket_of_an_inbound_mail(running):
    # The rules role inside `switchboard run`: the trigger is read from the database the API wrote.
    _, demo, http, smtp_port = running
    status, trigger = _post(http, "/api/v1/triggers", demo["api_key"], {
        "name": "refunds", "on": ["ticket.created"],
        "if": {"all": [{"field": "text", "op": "contains", "value": "退款"}]},
        "then": [{"action": "add_tags", "value": ["refund"]}, {"action": "set_priority", "value": 40}]})
    assert status == 201
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "Li Wei <li.wei@example.cn>", demo["email"], "订单 1042"
    msg.set_content("您好，我想申请退款。")
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as client:
        client.send_message(msg)
    [ticket] = wait_for(lambda: _get(http, "/api/v1/tickets", demo["api_key"])["items"], timeout=20,
                        what="the mail's ticket in the API")

    def tagged() -> dict | None:
        detail = _get(http, f"/api/v1/tickets/{ticket['id']}", demo["api_key"])
        return detail if detail["tags"] else None

    detail = wait_for(tagged, timeout=20, what="the trigger's tag on the ticket")
    assert (detail["tags"], detail["priority"]) == (["refund"], 40)
    # The demo's acknowledgement fires on the same event; the refunds trigger's firing is its own.
    [firing] = [f for f in _get(http, f"/api/v1/tickets/{ticket['id']}/audit", demo["api_key"])["items"]
                if f["source"].get("name") == "refunds"]
    assert (firing["source"], firing["event"]["type"], firing["result"]) == (
        {"kind": "trigger", "id": trigger["id"], "name": "refunds"}, "ticket.created", "applied")
    assert firing["actions"] == [{"type": "add_tags", "tags": ["refund"]}, {"type": "set_priority", "priority": 40}]


def _acknowledgements(data) -> list[EmailMessage]:
    """The mails in the outbox Maildir (no relay on `make run`)."""
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
            for p in sorted((data / "outbox" / "new").glob("*")) if p.is_file()]


def test_demo_acknowledges_a_mail_with_its_number_and_status_link_and_a_restart_adds_no_second(running,
                                                                                                 tmp_path):
    # The README's walkthrough mail: an acknowledgement in data/outbox with the ticket's number
    # and its signed status link, which opens the ticket's page.
    proc, demo, http, smtp_port = running
    data = tmp_path / "data"
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "Li Wei <li.wei@example.cn>", demo["email"], "订单 1042 还没有发货"
    msg.set_content("您好，我的订单一周了还没有发货，请帮忙查一下。")
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as client:
        client.send_message(msg)
    [ack] = wait_for(lambda: _acknowledgements(data), timeout=30, what="the acknowledgement in data/outbox")
    body = ack.get_body(("plain",)).get_content()
    assert ack["To"] == "Li Wei <li.wei@example.cn>" and ack["Subject"] == "Re: 订单 1042 还没有发货 [#1]"
    assert "Your request is ticket #1; an agent will answer you by mail." in body and "工单号 #1，" in body
    links = re.findall(rf"http://127\.0\.0\.1:{http}/portal/[A-Za-z0-9._-]+", body)
    assert len(links) == 2 and len(set(links)) == 1  # the template's, and every reply's under the signature
    with urllib.request.urlopen(links[0], timeout=5) as r:
        assert r.status == 200 and "订单 1042 还没有发货" in r.read().decode()
    [trigger] = [t for t in json.loads(_cli(role_env(data, None, None), "trigger", "list", "--tenant", "demo").stdout)
                 if t["name"] == "demo: acknowledge mail"]
    assert trigger["id"] == demo["acknowledgement"]["trigger_id"] and trigger["on"] == ["ticket.created"]
    # A second start on the same data folder keeps the one trigger.
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    http = free_port()
    env = role_env(data, None, None, http_port=http, smtp_port=free_port())
    with open(tmp_path / "stdout2", "w") as out, open(tmp_path / "stderr2", "w") as err:
        again = subprocess.Popen([sys.executable, "-m", "ops.cli", "run"], env=env, stdout=out, stderr=err)
    try:
        wait_for(lambda: _healthy(http), timeout=60, what="the second switchboard run")
    finally:
        again.send_signal(signal.SIGTERM)
        assert again.wait(30) == 0
    listed = json.loads(_cli(env, "trigger", "list", "--tenant", "demo").stdout)
    assert [t["name"] for t in listed] == ["demo: acknowledge mail"]
    assert json.loads((data / "demo.json").read_text())["acknowledgement"] == demo["acknowledgement"]


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


def test_demo_sms_account_takes_an_aliyun_batch_and_a_signed_twilio_text_onto_one_ticket(running):
    # The demo SMS account from demo.json, used as docs/sms.md shows.
    _, demo, http, _ = running
    sms = demo["sms"]
    batch = [{"phone_number": "13800138000", "send_time": "2026-11-23 09:30:00", "content": "我的快递到哪了？",
              "sign_name": "演示", "dest_code": "1", "sequence_id": 1}]
    req = urllib.request.Request(f"http://127.0.0.1:{http}/sms/{sms['account']}/aliyun?token={sms['token']}",
                                 data=json.dumps(batch).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        assert (r.status, json.loads(r.read())) == (200, {"code": 0, "msg": "接收成功"})
    url = f"http://127.0.0.1:{http}/sms/{sms['account']}/twilio"
    params = {"MessageSid": "SM" + "0" * 32, "From": "+8613800138000", "To": "+8610690000", "Body": "单号 SF1"}
    req = urllib.request.Request(url, data=urllib.parse.urlencode(params).encode(), headers={
        "X-Twilio-Signature": RequestValidator(sms["auth_token"]).compute_signature(url, params)})
    with urllib.request.urlopen(req, timeout=5) as r:
        assert (r.status, r.read()) == (200, b'<?xml version="1.0" encoding="UTF-8"?><Response/>')
    [ticket] = wait_for(lambda: _get(http, "/api/v1/tickets", demo["api_key"])["items"], timeout=20,
                        what="the texts' ticket in the API")
    def both() -> list | None:
        messages = _get(http, f"/api/v1/tickets/{ticket['id']}", demo["api_key"])["messages"]
        return messages if len(messages) == 2 else None

    messages = wait_for(both, timeout=20, what="both texts on the ticket")
    assert (ticket["channel"], ticket["subject"]) == ("sms", "我的快递到哪了？")
    assert [m["text"] for m in messages] == ["我的快递到哪了？", "单号 SF1"]


def test_data_folder_database_wal_and_aof_are_private(running, tmp_path):
    # The folder holds raw mail (AOF), personal data (database) and keys: owner only.
    data = tmp_path / "data"
    assert _mode(data) == 0o700 and _mode(data / "redis") == 0o700
    for name in ("switchboard.db", "switchboard.db-wal", "secret_key", "demo.json"):
        assert _mode(data / name) == 0o600, name
    aof = [p for p in (data / "redis").rglob("*") if p.is_file() and "appendonly" in p.name]
    assert aof, "no AOF files under data/redis"
    assert {p.name: _mode(p) for p in aof} == {p.name: 0o600 for p in aof}


def test_banner_prints_the_demo_sign_in_and_only_a_prefix_of_the_api_key(running, tmp_path):
    # stdout lands in logs; the whole key stays in demo.json only.
    _, demo, _, _ = running
    out = wait_for(lambda: "Switchboard is running" in (text := (tmp_path / "stdout").read_text()) and text,
                   what="the banner")
    assert f"API key     {demo['api_key'][:8]}…" in out
    assert demo["api_key"] not in out and demo["api_key"][8:] not in out
    # The demo's people: the console URL and each one's email and password, to sign in with.
    people = demo["console"]
    assert f"  console {people['url']}   status page /portal/<signed link>" in out
    assert out.count(f"console {people['url']}") == 1 and "  console sign-in (demo people):" in out
    printed = {role: (email, password) for role, email, password in
               re.findall(r"^    (supervisor|agent) +(\S+@\S+)  password (\S+)$", out, re.M)}
    assert printed == {role: (people[role]["email"], people[role]["password"]) for role in ("supervisor", "agent")}


def test_cli_next_to_run_seals_secrets_with_the_data_folder_key(running, tmp_path):
    # `switchboard account …` beside `make run`: same key as the gateway, never plaintext.
    _, _, http, _ = running
    data = tmp_path / "data"
    env = role_env(data, None, None)
    assert _cli(env, "tenant", "create", "acme").returncode == 0
    done = _cli(env, "account", "add", "wechat", "acme-mp", "--tenant", "acme", "--setting", "token=wx-token-7f3a",
                "--setting", "mode=compatible")
    assert done.returncode == 0, done.stderr
    done = _cli(env, "account", "imap", "help@acme.test", "--tenant", "acme", "--host", "127.0.0.1", "--user",
                "help", "--password-stdin", stdin="imap-pass-19c2\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("email account help@acme.test fetches help@127.0.0.1:993/INBOX")
    with sqlite3.connect(data / "switchboard.db") as db:
        rows = {a: (json.loads(s), e) for a, s, e in db.execute(
            "SELECT address, settings, secret_enc FROM channel_accounts WHERE address IN ('acme-mp', 'help@acme.test')")}
    key = (data / "secret_key").read_text().strip()
    settings, sealed = rows["acme-mp"]
    assert settings == {"mode": "compatible"} and "wx-token-7f3a" not in sealed
    assert json.loads(unseal(key, sealed)) == {"token": "wx-token-7f3a"}
    settings, sealed = rows["help@acme.test"]
    assert "imap-pass-19c2" not in json.dumps(settings) + sealed and unseal(key, sealed) == "imap-pass-19c2"
    # The running gateway opens the token with the same key: WeChat's URL check passes.
    ts, nonce = str(int(time.time())), "n0nce"
    query = f"signature={sign('wx-token-7f3a', ts, nonce)}&timestamp={ts}&nonce={nonce}&echostr=hello-7"
    with urllib.request.urlopen(f"http://127.0.0.1:{http}/wechat/acme-mp?{query}", timeout=5) as r:
        assert (r.status, r.read()) == (200, b"hello-7")


def test_cli_refuses_a_secret_setting_when_no_key_can_be_had(tmp_path):
    # The key file cannot be read (here: a folder in its place): the token is refused, not stored in clear.
    data = tmp_path / "data"
    env = role_env(data, None, f"sqlite:///{tmp_path / 'sb.db'}")
    assert _cli(env, "tenant", "create", "acme").returncode == 0
    (data / "secret_key").mkdir()
    done = _cli(env, "account", "add", "wechat", "acme-mp", "--tenant", "acme", "--setting", "token=t0k3n")
    assert done.returncode == 1
    assert "no secret key to seal credentials with" in done.stderr and "never stored in the clear" in done.stderr
    with sqlite3.connect(tmp_path / "sb.db") as db:
        assert db.execute("SELECT count(*) FROM channel_accounts").fetchone() == (0,)
