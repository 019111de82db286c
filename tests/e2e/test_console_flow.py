"""The agent console in a real browser (Debian's chromium under Playwright) against `switchboard run`:
sign in, a mail arriving live, reply delivered to the SMTP relay, solve, tenant isolation,
hostile mail rendered inert; screenshots of each page in English and Chinese."""

from __future__ import annotations

import json
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from console_system import BETA, cli, screenshot, sign_in, start
from playwright.sync_api import expect
from support import wait_for


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    yield from start(tmp_path_factory.mktemp("console"))


def _sent(system, marker: str) -> list[tuple[dict, EmailMessage]]:
    """(envelope, mail) of each mail at the SMTP sink whose text holds ``marker``."""
    found = []
    for path in sorted(system.sink.glob("*.eml")):
        mail = message_from_bytes(path.read_bytes(), policy=policy.default)
        if marker in mail.get_body(("plain",)).get_content():
            found.append((json.loads(path.with_suffix(".json").read_text()), mail))
    return found




def test_sign_in_lands_on_the_inbox_and_the_language_link_switches_every_string(system, page):
    # The demo supervisor from demo.json; the page speaks English, then Chinese after the link.
    page.goto(system.base + "/")
    assert page.url.startswith(system.base + "/login")
    screenshot(page, "login-en")
    email, password = system.person("supervisor")
    sign_in(page, system.base, email, password)
    expect(page.locator("#tab-all")).to_contain_text("All tickets")
    assert page.url == system.base + "/"
    expect(page.locator("header .who")).to_contain_text("Demo Supervisor")
    screenshot(page, "inbox-en")
    page.click("a[lang=zh-CN]")
    expect(page.locator("#tab-all")).to_contain_text("全部工单")
    expect(page.locator("#tab-mine")).to_contain_text("我的工单")
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    screenshot(page, "inbox-zh")
    page.click("button:has-text('退出')")
    expect(page.locator("h1")).to_have_text("登录")
    screenshot(page, "login-zh")


def test_mail_appears_live_then_a_reply_reaches_the_relay_and_the_ticket_is_solved(system, page):
    email, password = system.person("supervisor")
    sign_in(page, system.base, email, password)
    page.goto(system.base + "/?tab=all")
    page.evaluate("window.notReloaded = true")
    expect(page.locator("#live")).to_be_visible()  # the event stream is open
    system.mail("Order 1042 has not shipped", "Hello, my order 1042 is a week late.")
    row = page.locator("tr.ticket", has_text="Order 1042 has not shipped")
    expect(row).to_be_visible()
    assert page.evaluate("window.notReloaded") is True  # the list changed without a reload
    row.locator("a.subject").click()
    expect(page.locator("#ticket-subject")).to_have_text("Order 1042 has not shipped")
    expect(page.locator("#timeline")).to_contain_text("my order 1042 is a week late")
    expect(page.locator("aside")).to_contain_text("li.wei@example.cn")
    screenshot(page, "ticket-en")
    number = int(page.url.rsplit("/", 1)[1].split("?")[0])
    # The demo's acknowledgement went out first, with the ticket's number and status link.
    [(envelope, ack)] = wait_for(lambda: _sent(system, "Your request is ticket"), timeout=30,
                                 what="the acknowledgement")
    text = ack.get_body(("plain",)).get_content()
    assert envelope["rcpt_tos"] == ["li.wei@example.cn"]
    assert f"ticket #{number};" in text and f"工单号 #{number}，" in text and f"{system.base}/portal/" in text
    page.fill("#reply-text", "We have shipped it today: SF123456.")
    page.click("#reply-send")
    expect(page.locator("#notice")).to_have_text("Queued for sending.")
    [(envelope, mail)] = wait_for(lambda: _sent(system, "SF123456"), timeout=30, what="the reply at the SMTP sink")
    assert envelope["rcpt_tos"] == ["li.wei@example.cn"]
    assert mail["Subject"].startswith("Re: Order 1042 has not shipped")
    # The sender's message.sent event refreshes the timeline: the reply shows as sent.
    reply = page.locator("article.out", has_text="SF123456")
    expect(reply.locator(".delivery-status")).to_have_text("sent")
    # A required custom field: solving is refused until it is set on the ticket page.
    cli(system.env, "field", "add", "product", "choice", "--tenant", system.demo["tenant"], "--choices",
        "router,modem", "--required", "--label", "Product")
    page.reload()
    expect(page.locator("#fields-form")).to_contain_text("* required")
    page.select_option("#status-select", "solved")
    page.click("#status-save")
    expect(page.locator("#refused")).to_have_text("Fill in “Product” before solving or closing the ticket.")
    expect(page.locator("#ticket-status")).not_to_have_text("solved")
    screenshot(page, "ticket-required-field-en")
    page.select_option("#fld-product", "router")
    page.click("#fields-save")
    expect(page.locator("#notice")).to_have_text("Saved.")
    expect(page.locator("#fld-product")).to_have_value("router")
    page.select_option("#status-select", "solved")
    page.click("#status-save")
    expect(page.locator("#ticket-status")).to_have_text("solved")
    # The inbox filters by the field: router lists the ticket, modem does not.
    page.goto(system.base + "/?tab=all")
    page.select_option("#filter-product", "router")
    page.click("form.filters button[type=submit]")
    expect(page.locator("tr.ticket")).to_have_count(1)
    expect(page.locator("tr.ticket")).to_contain_text("Order 1042 has not shipped")
    assert "field.product=router" in page.url
    screenshot(page, "inbox-field-filter-en")
    page.select_option("#filter-product", "modem")
    page.click("form.filters button[type=submit]")
    expect(page.locator(".empty")).to_have_text("No tickets.")
    page.goto(f"{system.base}/tickets/{number}")
    [ticket] = [t for t in system.api("/tickets")["items"] if t["number"] == number]
    assert ticket["status"] == "solved"
    page.click("a[lang=zh-CN]")
    expect(page.locator("#ticket-status")).to_have_text("已解决")
    expect(reply.locator(".delivery-status")).to_have_text("已发送")
    screenshot(page, "ticket-zh")


def test_an_agent_of_another_tenant_gets_404_for_a_ticket_by_url(system, page):
    system.mail("Invoice question", "Please send the invoice again.")
    number = wait_for(lambda: [t["number"] for t in system.api("/tickets")["items"]
                               if t["subject"] == "Invoice question"], what="the ticket")[0]
    sign_in(page, system.base, BETA["email"], BETA["password"])
    expect(page.locator("#tab-mine")).to_be_visible()
    answer = page.goto(f"{system.base}/tickets/{number}")
    assert answer.status == 404
    expect(page.locator("#error-message")).to_have_text("Not found.")
    assert "Invoice question" not in page.content()
    # Its queue holds none of the demo tenant's tickets either.
    page.goto(system.base + "/?tab=queue&q=Invoice")
    expect(page.locator(".empty")).to_have_text("No tickets.")


def test_script_and_onerror_in_a_mail_render_inert_and_shown_as_text(system, page):
    system.mail("<script>alert('subject')</script> refund", "Text part <script>alert('text')</script>",
                html="<p>Hi <img src=x onerror=\"alert('img')\"><script>alert('html')</script>"
                     "<a href=\"javascript:alert('link')\">click</a></p>")
    number = wait_for(lambda: [t["number"] for t in system.api("/tickets")["items"]
                               if "refund" in t["subject"]], what="the hostile ticket")[0]
    email, password = system.person("agent")
    sign_in(page, system.base, email, password)
    page.goto(f"{system.base}/?tab=queue")
    expect(page.locator("tr.ticket", has_text="refund")).to_contain_text("<script>alert('subject')</script> refund")
    page.goto(f"{system.base}/tickets/{number}")
    expect(page.locator("#ticket-subject")).to_have_text("<script>alert('subject')</script> refund")
    body = page.locator("article.message .body.html")
    expect(body).to_contain_text("Hi")
    assert body.locator("script").count() == 0
    assert body.locator("[onerror]").count() == 0
    assert body.locator("a").get_attribute("href") is None  # the javascript: URL is gone
    page.click("#status-save")  # one more page load after which a handler would have fired
    expect(page.locator("#notice")).to_be_visible()
    assert page.dialogs == []
    assert page.evaluate("document.querySelectorAll('script:not([src])').length") == 0
