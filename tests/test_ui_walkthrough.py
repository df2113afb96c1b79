"""Issue 17's walkthrough, as an operator lives it, in headless Chromium against real worker processes.

100,000 executions in the database, and one real order that went wrong: shipping failed (the carrier's
credentials had expired) and the refund that should have undone the charge failed for good, so the
execution ended FAILED in compensation. The operator finds it from the dashboard and the list, reads
why on its page, has the causes fixed outside Trama (finance refunds the charge by hand; the team
renews the carrier credentials), retries it skipping the broken refund and watches it end COMPENSATED,
then re-runs the order and watches it succeed. Nothing but the pages: no API call.

With TRAMA_UI_SCREENSHOTS naming a folder, each step's screenshot is saved there
(walkthrough-01-dashboard.png, ...); without it nothing is written. docs/ui.md's "Walkthrough" shows
them: `TRAMA_UI_SCREENSHOTS=docs/img pytest tests/test_ui_walkthrough.py` makes them again.
"""

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from definitions.services import store_definition
from executions.models import Execution, OperatorAction
from executions.services import start_execution
from tests.support import wait_until
from tests.support.browser import has_class, shot
from tests.support.engine import history
from tests.support.history import load_executions
from tests.support.service import Reply

pytestmark = [pytest.mark.browser, pytest.mark.workers, pytest.mark.django_db(transaction=True)]

ORDER = {"orderId": "A-90210", "customer": {"id": 4242}, "amount": 129.9, "items": ["SKU-7", "SKU-9"]}
CARRIER_DOWN = {"error": "warehouse api: carrier credentials expired", "carrier": "FastShip", "retry_after_s": 3600}
REFUND_REFUSED = {"error": "payments: cannot refund ch-90210: captured by the legacy gateway, refund it in its console"}


def orders(url: str) -> dict:
    """The orders saga: reserve stock, charge the card, ship; each of the first two undone by its compensation."""
    return {
        "name": "orders",
        "kind": "saga",
        "steps": [
            {"id": "reserve",
             "request": {"method": "POST", "url": f"{url}/inventory/reservations",
                         "body": {"orderId": "{{payload.orderId}}", "items": "{{payload.items}}"}},
             "compensation": {"method": "DELETE",
                              "url": url + "/inventory/reservations/{{nodes.reserve.response.body.id}}"}},
            {"id": "charge",
             "request": {"method": "POST", "url": f"{url}/payments/charges",
                         "body": {"orderId": "{{payload.orderId}}", "amount": "{{payload.amount}}"}},
             "compensation": {"method": "POST", "url": f"{url}/payments/refunds",
                              "body": {"charge": "{{nodes.charge.response.body.id}}"},
                              "retry": {"max_attempts": 2, "backoff_s": 0.3}}},
            {"id": "ship",
             "request": {"method": "POST", "url": f"{url}/shipping/shipments",
                         "body": {"orderId": "{{payload.orderId}}", "items": "{{payload.items}}"}},
             "retry": {"max_attempts": 3, "backoff_s": 0.3}},
        ],
    }  # fmt: skip


def screenshot(page: Page, number: int, name: str, *regions: Locator) -> None:
    """Step ``number``'s screenshot, in the folder TRAMA_UI_SCREENSHOTS names (nothing without it).

    The viewport (1440 x 900), or the smallest full-width band of the page holding ``regions``.
    """
    folder = os.environ.get("TRAMA_UI_SCREENSHOTS")
    if not folder:
        return
    options: dict = {"full_page": False}
    if regions:
        # Offsets in the document, each read in one go (a smooth scroll may be under way).
        spans = [region.evaluate(DOCUMENT_SPAN) for region in regions]
        top, bottom = max(min(t for t, _ in spans) - 4, 0), max(b for _, b in spans) + 4
        width = page.viewport_size["width"]
        options = {"full_page": True, "clip": {"x": 0, "y": top, "width": width, "height": bottom - top}}
    Path(folder).mkdir(parents=True, exist_ok=True)
    shot(page, f"walkthrough-{number:02d}-{name}", Path(folder), **options)


DOCUMENT_SPAN = "el => { const r = el.getBoundingClientRect(); return [r.top + scrollY, r.bottom + scrollY]; }"


def visible_ops(page: Page) -> list[str]:
    return page.eval_on_selector_all(".op-buttons [data-op]:not([hidden])", "els => els.map(e => e.dataset.op)")


def history_row(page: Page, title: str) -> Locator:
    return page.locator("tr.ev", has_text=title)


def test_an_operator_finds_a_failed_order_among_100000_reads_why_retries_skipping_the_refund_and_reruns_it(
    page, workers, service
):
    load_executions()  # 100,000 executions over 60 days (orders, billing, shipping), 1 in 20 FAILED
    # The services take a little time to answer, as real ones do (the timeline's bars get readable widths).
    service.default("POST", "/inventory/reservations", Reply(201, {"id": "r-90210"}, delay_s=0.15))
    service.default("POST", "/payments/charges", Reply(201, {"id": "ch-90210", "status": "captured"}, delay_s=0.25))
    service.default("POST", "/shipping/shipments", Reply(503, CARRIER_DOWN, delay_s=0.3))
    service.default("POST", "/payments/refunds", Reply(500, REFUND_REFUSED, delay_s=0.2))
    service.default("DELETE", "/inventory/reservations/r-90210", Reply(204, delay_s=0.15))
    definition = store_definition(orders(service.url))
    assert definition.version == 2  # the loader stored orders v1
    order, _ = start_execution(definition, ORDER)
    wait_until(lambda: Execution.objects.get(pk=order.pk).status == "FAILED", timeout=60, message="order FAILED")
    assert history(order) == [
        ("reserve", "forward", 1, "succeeded"), ("charge", "forward", 1, "succeeded"),
        ("ship", "forward", 1, "failed"), ("ship", "forward", 2, "failed"), ("ship", "forward", 3, "failed"),
        ("charge", "compensation", 1, "failed"), ("charge", "compensation", 2, "failed"),
    ]  # fmt: skip
    assert Execution.objects.filter(parent__isnull=True).count() == 100_001

    # 1. The dashboard: failures in the last hour.
    page.goto("/")
    failed_last_hour = page.locator('.status-window[data-range="1h"] .count[data-status=FAILED]')
    assert int(failed_last_hour.inner_text()) >= 2  # ours and the loader's of the last hour
    screenshot(page, 1, "dashboard", page.locator(".topbar"), page.locator(".card.failing"))

    # 2. The list: that count's link (FAILED, last hour), then the order's id in the input search.
    failed_last_hour.click()
    expect(page).to_have_url(re.compile(r"/ui/executions/\?status=FAILED&range=1h$"))
    expect(page.locator(".chip-FAILED")).to_have_class(has_class("active"))
    assert page.locator(".exec-row").count() >= 2
    page.fill('input[name="input"]', "orderId = A-90210")
    page.click(".filters button[type=submit]")
    expect(page).to_have_url(re.compile(r"input=orderId\+%3D\+A-90210"))
    rows = page.locator(".exec-row")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-id", str(order.pk))
    expect(rows.first).to_contain_text("orders")
    expect(rows.first.locator(".col-node")).to_have_text("charge")
    screenshot(page, 2, "list", page.locator(".topbar"), page.locator(".pager"))

    # 3. The execution page: FAILED in compensation; the timeline shows why it compensated and what failed.
    rows.first.locator(".exec-link").click()
    page.wait_for_selector("#execution[data-status=FAILED]")
    expect(page).to_have_url(re.compile(rf"/ui/executions/{order.pk}/$"))
    ship, charge = page.locator('.tl-row[data-node="ship"]'), page.locator('.tl-row[data-node="charge"]')
    expect(ship.locator(".bar.attempt.status-failed")).to_have_count(3)
    expect(ship.locator(".bar.kind-backoff")).to_have_count(2)
    expect(charge.locator(".bar.phase-compensation.status-failed")).to_have_count(2)
    expect(page.locator('.tl-row[data-node="reserve"] .bar.phase-compensation')).to_have_count(0)
    expect(page.locator(".io-error")).to_contain_text('"phase": "compensation"')
    expect(page.locator(".io-error")).to_contain_text("HTTP 500")
    # Under the error, what the service answered on that attempt: why, without opening anything.
    expect(page.locator(".io-error .error-answer")).to_contain_text("charge answered 500")
    expect(page.locator(".io-error .error-answer")).to_contain_text("refund it in its console")
    assert visible_ops(page) == ["retry", "retry_skip", "rerun"]
    screenshot(page, 3, "failed", page.locator(".exec-header"), page.locator(".timeline"))

    # 4. Why it was undone: the history's row of the last shipping attempt, opened.
    ship_attempt = history_row(page, "task ship attempt 3")
    ship_attempt.click()
    body = page.locator("tr.ev-body")
    body.scroll_into_view_if_needed()  # the history scrolls within its card
    expect(body).to_contain_text("Response 503")
    expect(body).to_contain_text("carrier credentials expired")
    expect(ship.locator(".bar.selected")).to_have_count(1)  # and its bar is marked on the timeline
    screenshot(page, 4, "why-ship", ship_attempt, body)

    # 5. Why it needs an operator: the last refund attempt, opened (the shipping row closed again).
    ship_attempt.click()
    refund_attempt = history_row(page, "compensation of charge attempt 2")
    refund_attempt.click()
    expect(body).to_have_count(1)
    body.scroll_into_view_if_needed()
    expect(body).to_contain_text("Response 500")
    expect(body).to_contain_text("refund it in its console")
    expect(charge.locator(".bar.phase-compensation.selected")).to_have_count(1)
    screenshot(page, 5, "why-refund", history_row(page, "compensation of charge attempt 1"), body)

    # The causes are fixed outside Trama: finance refunds ch-90210 by hand in the legacy gateway, and the
    # team renews the carrier credentials (from now on the shipping service answers 201).
    service.default("POST", "/shipping/shipments", Reply(201, {"shipment": "SH-1", "carrier": "FastShip"}, delay_s=0.3))

    # 6. Retry, skipping the refund (done by hand: Trama must not refund again): the dialog says what happens.
    page.click(".op-buttons [data-op=retry_skip]")
    dialog = page.locator("dialog#dlg-retry_skip")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("The compensation of charge is not run again")
    expect(dialog).to_contain_text("The compensations of the earlier steps then run")
    screenshot(page, 6, "confirm")
    dialog.locator("[data-confirm]").click()

    # 7. The page polls until the execution ends: reserve released, COMPENSATED; the skip shows, with the ◆.
    expect(page.locator(".message-success")).to_contain_text("skipping the compensation that failed")
    page.wait_for_selector("#execution[data-status=COMPENSATED]")
    expect(charge.locator(".bar.phase-compensation.skipped")).to_have_count(1)
    expect(page.locator('.tl-row[data-node="reserve"] .bar.phase-compensation.status-succeeded')).to_have_count(1)
    expect(page.locator(".bar.kind-operator")).to_have_text("retry, skip ◆")
    operator_row = page.locator("tr.ev-operator")  # and the history says who skipped, then the reserve released
    expect(operator_row).to_contain_text("retry, skipping the compensation that failed by ops")
    expect(operator_row.locator("xpath=following-sibling::tr[1]")).to_contain_text("compensation of reserve attempt 1")
    assert visible_ops(page) == ["rerun"]
    screenshot(page, 7, "compensated", page.locator(".messages"), page.locator(".timeline"))

    order.refresh_from_db()
    assert order.status == "COMPENSATED"
    assert history(order)[-1] == ("reserve", "compensation", 1, "succeeded")
    assert len(history(order)) == 8
    assert (order.error["node"], order.error["attempt"], order.error["message"]) == ("ship", 3, "HTTP 503")
    assert len(service.calls("POST", "/payments/refunds")) == 2  # never a third: the refund was skipped
    assert len(service.calls("DELETE", "/inventory/reservations/r-90210")) == 1
    skip = OperatorAction.objects.get(execution=order)
    assert (skip.kind, skip.actor) == ("retry_skip", "ops")

    # 8. The order placed again: Re-run with the same input, and the page of the new execution until SUCCEEDED.
    page.click(".op-buttons [data-op=rerun]")
    rerun_dialog = page.locator("dialog#dlg-rerun")
    expect(rerun_dialog.locator('textarea[name="input"]')).to_have_value(re.compile(r'"orderId": "A-90210"'))
    rerun_dialog.locator("[data-confirm]").click()
    rerun = wait_until(lambda: Execution.objects.exclude(pk=order.pk).filter(input=ORDER).first(), message="rerun")
    expect(page).to_have_url(re.compile(rf"/ui/executions/{rerun.pk}/$"))
    page.wait_for_selector("#execution[data-status=SUCCEEDED]")
    expect(page.locator(".bar.attempt.status-succeeded")).to_have_count(3)
    expect(page.locator(".bar.status-failed")).to_have_count(0)
    expect(page.locator(".message-success")).to_contain_text("Re-run started: this is the new execution.")
    screenshot(page, 8, "succeeded", page.locator(".messages"), page.locator(".timeline"))

    # Back on the first execution, its history's re-run row leads to the new one.
    page.go_back()
    page.wait_for_selector("#execution[data-status=COMPENSATED]")
    page.locator("tr.ev-operator", has_text="re-run by ops").locator("a.ev-link").click()
    expect(page).to_have_url(re.compile(rf"/ui/executions/{rerun.pk}/$"))
    # And the new one says what it re-ran.
    page.locator(".exec-sub a.rerun-of").click()
    expect(page).to_have_url(re.compile(rf"/ui/executions/{order.pk}/$"))

    rerun.refresh_from_db()
    assert (rerun.status, rerun.created_by, rerun.definition_id) == ("SUCCEEDED", "ops", definition.pk)
    assert [(node, status) for node, _, _, status in history(rerun)] == [
        ("reserve", "succeeded"), ("charge", "succeeded"), ("ship", "succeeded"),
    ]  # fmt: skip
    assert rerun.output == {"shipment": "SH-1", "carrier": "FastShip"}
    skip, again = OperatorAction.objects.filter(execution=order).order_by("at")
    assert [(a.kind, a.actor) for a in (skip, again)] == [("retry_skip", "ops"), ("rerun", "ops")]
    assert again.detail == {"execution": str(rerun.pk), "version": 2, "input_edited": False}
    assert Execution.objects.filter(parent__isnull=True).count() == 100_002
