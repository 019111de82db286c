"""The supervisor's dashboard and the admin's ops page in a real browser (Debian's chromium under
Playwright) against `switchboard run`: the queue and the KPI chart, live; a dead letter replayed
from the page ends up as a ticket. Screenshots in English and Chinese."""

from __future__ import annotations

import sqlite3
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from console_system import cli, in_language, screenshot, sign_in, start
from playwright.sync_api import expect
from support import make_mail, wait_for

from core.envelope import Envelope
from core.redis import EmbeddedRedis, connect_sync
from ticket_service.store import directory

ADMIN = ("root@example.com", "demo-admin-pass-1")


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    yield from start(tmp_path_factory.mktemp("dashboard"))




def test_supervisor_sees_the_queue_and_the_kpi_chart(system, page):
    # The demo's people are offline: the router leaves both mails waiting in the queue.
    system.mail("Parcel never came", "Tracking says delivered, it was not.")
    system.mail("Refund please", "I sent the shoes back on Monday.")
    wait_for(lambda: len(system.api("/tickets")["items"]) >= 2, what="two tickets")
    wait_for(lambda: system.api("/reports/queue")["waiting"] == 2, what="two tickets queued")
    email, password = system.person("supervisor")
    sign_in(page, system.base, email, password)
    page.click("#nav-dashboard")
    expect(page.locator("h1")).to_contain_text("Dashboard")
    expect(page.locator("#waiting-total")).to_have_text("2")
    today = datetime.now(ZoneInfo("UTC")).date().isoformat()
    volume = page.locator("#chart-volume-day svg")
    expect(volume).to_have_attribute("role", "img")
    expect(volume.locator("title").first).to_have_text("Tickets")
    expect(volume.locator("rect.bar title", has_text=f"{today} · Tickets: 2")).to_have_count(1)
    expect(volume.locator("text.name", has_text=today[5:])).to_have_count(1)
    expect(page.locator("#chart-queue svg rect.bar title")).to_have_text(["VIP 0 · Email · waiting: 2"])
    expect(page.locator("#chart-volume-channel text.name")).to_have_text(["Email"])
    href = page.locator("#csv-kpis-day").get_attribute("href")
    answer = page.request.get(system.base + href)
    assert answer.status == 200 and answer.headers["content-type"] == "text/csv; charset=utf-8"
    # Two tickets today, none answered: the demo's acknowledgements are not an agent's reply.
    assert f"{today},2,0,0" in answer.body().decode("utf-8-sig")
    # The queue block follows new tickets without a reload (the event stream).
    page.evaluate("window.notReloaded = true")
    expect(page.locator("#live")).to_be_visible()
    system.mail("Wrong size", "Can I swap for a 42?")
    expect(page.locator("#waiting-total")).to_have_text("3")
    assert page.evaluate("window.notReloaded") is True
    screenshot(page, "dashboard-en")
    in_language(page, system.base, "zh", "/dashboard")
    expect(page.locator("h1")).to_contain_text("主管看板")
    expect(page.locator("#chart-volume-day svg rect.bar title", has_text=f"{today} · 工单量: 3")).to_have_count(1)
    expect(page.locator("#chart-volume-channel text.name")).to_have_text(["邮件"])
    screenshot(page, "dashboard-zh")


def _next_account_id(data: Path) -> int:
    with sqlite3.connect(data / "switchboard.db") as db:
        return db.execute("SELECT max(id) FROM channel_accounts").fetchone()[0] + 1


def test_admin_opens_the_ops_page_and_replays_a_dead_letter(system, page):
    cli(system.env, "user", "add", ADMIN[0], "--tenant", "demo", "--role", "admin", "--password-stdin",
        "--name", "Demo Admin", stdin=ADMIN[1] + "\n")
    data = Path(system.env["SWITCHBOARD_DATA_DIR"])
    missing = _next_account_id(data)
    # A mail for a mailbox the demo tenant has not registered yet: the normalizer dead-letters it.
    env = Envelope(tenant="demo", channel="email", account=str(missing), content_type="message/rfc822",
                   payload=make_mail(subject="Lost invoice 77", to="invoices@example.com")[0])
    redis = connect_sync(EmbeddedRedis(data).url)
    try:
        redis.xadd("ingest.email", {b"e": env.pack()})
        wait_for(lambda: redis.exists("dead.ingest.email") and redis.xlen("dead.ingest.email") == 1,
                 timeout=60, what="the dead letter")
    finally:
        redis.close()
    cli(system.env, "account", "add", "email", "invoices@example.com", "--tenant", "demo")
    assert _next_account_id(data) == missing + 1
    # The normalizer remembers a missing account for a few seconds; replay after that.
    time.sleep(directory.MISS_TTL + 0.5)

    sign_in(page, system.base, *ADMIN)
    page.click("#nav-ops")
    expect(page.locator("h1")).to_have_text("Ops")
    expect(page.locator("#streams-table tr[data-stream='ingest.email']").first).to_be_visible()
    expect(page.locator("#beats-table tr[data-role='normalizer']").first).to_be_visible()
    row = page.locator(f"tr.dead[data-envelope='{env.id}']")
    expect(row).to_contain_text(f"no email account '{missing}'")
    expect(page.locator("#dead-others")).to_contain_text(": 0")
    screenshot(page, "ops-en")
    in_language(page, system.base, "zh", "/ops")
    expect(page.locator("h1")).to_have_text("运维")
    screenshot(page, "ops-zh")
    row.locator("button", has_text="重新投递").click()
    expect(page.locator("#notice")).to_have_text("死信已重新投递。")
    expect(page.locator("#dead-empty")).to_be_visible()
    tickets = wait_for(lambda: [t for t in system.api("/tickets")["items"] if t["subject"] == "Lost invoice 77"],
                       timeout=30, what="the replayed mail's ticket")
    assert len(tickets) == 1
