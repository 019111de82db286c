"""The console's guards in a real browser against `switchboard run`: a form POST without the
CSRF token is refused with a 403 page and changes nothing; wrong passwords are refused, and
after the limit even the right one is, for that email."""

from __future__ import annotations

import pytest
from console_system import screenshot, sign_in, start
from playwright.sync_api import expect
from support import wait_for

LIMIT = 3


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    yield from start(tmp_path_factory.mktemp("console-guards"), console_login_limit=LIMIT)




def test_a_post_without_the_csrf_token_is_403_and_changes_nothing(system, page):
    system.mail("Where is my parcel?", "It has been ten days.")
    [ticket] = wait_for(lambda: system.api("/tickets")["items"], what="the ticket")
    email, password = system.person("supervisor")
    sign_in(page, system.base, email, password)
    expect(page.locator("#tab-all")).to_be_visible()
    # The browser's own cookies, a form body without the token, as a forged cross-site form would send.
    answer = page.request.post(f"{system.base}/tickets/{ticket['number']}/status", form={"status": "solved"})
    assert answer.status == 403
    assert "This form has expired or did not come from this site" in answer.text()
    answer = page.request.post(f"{system.base}/tickets/{ticket['number']}/status",
                               form={"status": "solved", "csrf": "not-the-token"})
    assert answer.status == 403
    assert system.api(f"/tickets/{ticket['id']}")["status"] == "new"
    page.set_content(answer.text())
    screenshot(page, "csrf-403-en")
    # Sign-out without the token is refused too: the session still works afterwards.
    assert page.request.post(f"{system.base}/logout", form={}).status == 403
    assert page.goto(f"{system.base}/tickets/{ticket['number']}").status == 200


def test_wrong_passwords_are_refused_and_then_the_email_is_limited(system, page):
    email, password = system.person("agent")
    for _ in range(LIMIT):
        sign_in(page, system.base, email, "not-the-password")
        expect(page.locator("#login-error")).to_have_text("Wrong email or password.")
        assert "/login" in page.url
    sign_in(page, system.base, email, password)  # the right password, past the limit
    expect(page.locator("#login-error")).to_have_text("Too many failed sign-ins. Try again in a few minutes.")
    screenshot(page, "login-limited-en")
    assert page.goto(system.base + "/").url.startswith(system.base + "/login")
    # Another user from the same address is not locked out by this email's failures.
    email, password = system.person("supervisor")
    sign_in(page, system.base, email, password)
    expect(page.locator("#tab-all")).to_be_visible()
