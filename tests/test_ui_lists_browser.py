"""The overview pages in headless Chromium: the executions list's keyboard, chips and auto-refresh; 800 px windows.

Debian's chromium, never a downloaded browser: the fixtures and helpers of tests/support/browser.py.
"""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from executions.models import Execution
from tests.support.browser import open_page, shot, staff_context
from tests.support.definitions import DefinitionFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
REFRESH_WAIT_MS = 12_000  # the list refreshes every 5 s


def executions(definition, *statuses: str) -> list[Execution]:
    """Executions created a minute apart, the first one newest."""
    now = timezone.now()
    return [
        Execution.objects.create(definition=definition, status=status, created_at=now - timedelta(minutes=i))
        for i, status in enumerate(statuses)
    ]


def test_executions_list_keyboard_chips_and_pausable_refresh(page):
    orders = DefinitionFactory(name="orders")
    first, second, _ = executions(orders, "SUCCEEDED", "FAILED", "WAITING")
    page.goto("/ui/executions/?definition=orders")
    expect(page.locator("#executions")).to_have_attribute("data-ready", "true")
    rows = page.locator("tr.exec-row")
    expect(rows).to_have_count(3)
    shot(page, "executions-list")

    page.keyboard.press("j")
    expect(rows.nth(0)).to_have_class(re.compile(r"\bselected\b"))
    page.keyboard.press("ArrowDown")
    page.keyboard.press("j")
    page.keyboard.press("k")
    expect(rows.nth(1)).to_have_class(re.compile(r"\bselected\b"))
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(rf"/ui/executions/{second.pk}/$"))

    page.goto("/ui/executions/?definition=orders")
    page.click('.status-chip[data-status="FAILED"]')
    expect(page).to_have_url(re.compile(r"definition=orders"))
    expect(page).to_have_url(re.compile(r"status=FAILED"))
    expect(rows).to_have_count(1)

    page.goto("/ui/executions/?definition=orders")
    newer = Execution.objects.create(definition=orders, status="RUNNING")
    expect(page.locator(f'tr[data-id="{newer.pk}"]')).to_be_visible(timeout=REFRESH_WAIT_MS)
    expect(page.locator('.status-chip[data-status="RUNNING"] .count')).to_have_text("1")

    page.click("[data-action=pause]")
    expect(page.locator(".live")).to_have_attribute("data-state", "paused")
    unseen = Execution.objects.create(definition=orders, status="PENDING")
    page.wait_for_timeout(7_000)
    expect(page.locator(f'tr[data-id="{unseen.pk}"]')).to_have_count(0)
    page.reload()  # the pause is remembered
    expect(page.locator(".live")).to_have_attribute("data-state", "paused")
    page.click("[data-action=pause]")
    expect(page.locator(".live")).to_have_attribute("data-state", "live")
    assert first.pk != unseen.pk


def test_every_page_fits_an_800_px_window(browser, live_server):
    orders = DefinitionFactory(name="orders")
    DefinitionFactory(name="orders", version=2)
    parent, *_ = executions(orders, "WAITING", "FAILED", "COMPENSATED", "SUCCEEDED")
    Execution.objects.create(definition=orders, status="RUNNING", parent=parent, branch="audit")
    context = staff_context(browser, live_server.url)
    context.set_default_timeout(10_000)
    page = open_page(context)  # a page of this context, not the fixture
    page.set_viewport_size({"width": 800, "height": 900})
    urls = [
        "/", "/ui/executions/", "/ui/executions/?id=not-hex&input=nonsense", "/ui/definitions/",
        "/ui/definitions/orders/", "/ui/editor/orders/", f"/ui/executions/{parent.pk}/",
    ]  # fmt: skip
    for url in urls:
        page.goto(url)
        page.wait_for_load_state("networkidle")
        width, client = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert width <= client, f"{url} overflows an 800 px window: {width} > {client}"
        toolbar = page.locator(".topbar")
        assert toolbar.evaluate("t => t.scrollWidth <= t.clientWidth"), f"{url}: the top bar overflows"
    shot(page, "execution-800px")
    page.goto("/ui/executions/")
    expect(page.locator("th.col-abs")).to_be_hidden()  # the absolute time repeats the relative one's tooltip
    expect(page.locator("th", has_text="duration")).to_be_visible()
    shot(page, "executions-list-800px")
    assert page.errors == []
    context.close()
