"""The browser the console's browser tests share: one chromium per module, a fresh context
(English) per test, with any JavaScript dialog recorded on ``page.dialogs`` and dismissed."""

from __future__ import annotations

import pytest
from console_system import browser
from playwright.sync_api import sync_playwright


@pytest.fixture(scope="module")
def chromium():
    with sync_playwright() as p:
        b = browser(p)
        yield b
        b.close()


@pytest.fixture
def page(chromium):
    context = chromium.new_context(locale="en-US")
    page = context.new_page()
    page.set_default_timeout(20_000)
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.dialogs = dialogs
    yield page
    context.close()
