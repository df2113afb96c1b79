"""The execution page's operator actions and event history, driven in headless Chromium against real worker
processes (qcluster and the timer loop) and a real HTTP service: each action is clicked, confirmed, and
checked in the database (status, OperatorAction) and on the page (status, history row, timeline mark)."""

import time

import pytest
from playwright.sync_api import expect

from definitions.services import store_definition
from executions.models import Execution, OperatorAction
from executions.services import start_execution
from tests.support.browser import has_class, shot
from tests.support.service import Reply
from tests.test_operator_actions import saga, waiting_flow

pytestmark = [pytest.mark.browser, pytest.mark.workers, pytest.mark.django_db(transaction=True)]


def wait_status(execution: Execution, *statuses: str, timeout: float = 30) -> Execution:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        execution.refresh_from_db()
        if execution.status in statuses:
            return execution
        time.sleep(0.05)
    raise AssertionError(f"execution is {execution.status}, not {statuses}")


def confirm(page, op: str, expected_text: str, fill: dict | None = None) -> None:
    """Open an action's dialog, check that it says what will happen, fill its fields, and confirm it."""
    page.click(f".op-buttons [data-op={op}]")
    dialog = page.locator(f"dialog#dlg-{op}")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(expected_text)
    for selector, value in (fill or {}).items():
        dialog.locator(selector).fill(value)
    shot(page, f"action-{op}")
    dialog.locator("[data-confirm]").click()


def visible_ops(page) -> list[str]:
    return page.eval_on_selector_all(".op-buttons [data-op]:not([hidden])", "els => els.map(e => e.dataset.op)")


def test_operator_retries_skipping_a_broken_compensation_and_watches_it_finish(page, workers, service):
    service.default("POST", "/reserve", Reply(200, {"id": "r-1"}))
    service.default("POST", "/charge", Reply(400, {"error": "card declined"}))
    service.default("DELETE", "/reserve", Reply(500, {"error": "inventory down"}))
    execution, _ = start_execution(store_definition(saga(service.url)), {"orderId": "A-17"})
    wait_status(execution, "FAILED")

    page.goto(f"/ui/executions/{execution.pk}/")
    page.wait_for_selector("#execution[data-status=FAILED]")
    assert visible_ops(page) == ["retry", "retry_skip", "rerun"]
    confirm(page, "retry_skip", "The compensation of reserve is not run again")

    expect(page.locator(".message-success")).to_contain_text("skipping the compensation that failed")
    page.wait_for_selector("#execution[data-status=COMPENSATED]")
    action = OperatorAction.objects.get(execution=execution)
    assert (action.kind, action.actor) == ("retry_skip", "ops")
    assert wait_status(execution, "COMPENSATED").status == "COMPENSATED"
    assert len(service.calls("DELETE", "/reserve")) == 1
    assert visible_ops(page) == ["rerun"]

    # The history: the operator's row, linked to its mark on the timeline.
    row = page.locator("tr.ev-operator")
    expect(row).to_contain_text("retry, skipping the compensation that failed by ops")
    row.click()
    expect(page.locator(".bar.kind-operator")).to_have_class(has_class("selected"))
    # A bar selects its history row; a row opens to show the bodies.
    page.click('.tl-row[data-node="charge"] .bar.status-failed >> nth=0')
    charge = page.locator('tr.ev.selected[data-kind="attempt"]').first
    expect(charge).to_contain_text("charge attempt 1")
    charge.click()
    expect(page.locator("tr.ev-body")).to_contain_text("card declined")
    expect(page.locator('.bar.selected[data-step$=":2"]')).to_have_count(1)  # charge is the second step
    shot(page, "execution-actions-history")


def test_operator_completes_a_callback_wakes_a_sleep_reruns_and_cancels(page, workers, service):
    service.default("POST", "/pay", Reply(202, {"accepted": True}))  # never calls back
    service.default("POST", "/ship", Reply(200, {"shipped": True}))
    execution, _ = start_execution(store_definition(waiting_flow(service.url)), {"orderId": "B-1"})
    wait_status(execution, "WAITING")

    page.goto(f"/ui/executions/{execution.pk}/")
    page.wait_for_selector("#execution[data-status=WAITING]")
    assert visible_ops(page) == ["cancel", "cancel_now", "complete", "rerun"]
    body = '{"paid": true, "ref": "PX-1"}'
    confirm(page, "complete", "as if the service had called back", fill={'textarea[name="body"]': body})
    page.wait_for_selector("#execution[data-status=SLEEPING]")

    confirm(page, "wake", "The execution goes on at once")
    page.wait_for_selector("#execution[data-status=SUCCEEDED]")
    assert wait_status(execution, "SUCCEEDED").output == {"shipped": True}
    kinds = list(OperatorAction.objects.filter(execution=execution).order_by("at").values_list("kind", flat=True))
    assert kinds == ["complete_callback", "wake"]
    callback = page.locator("tr.ev-callback")
    expect(callback).to_contain_text("callback received for pay: succeeded (completed by hand)")
    callback.click()
    expect(page.locator("tr.ev-body")).to_contain_text('"ref": "PX-1"')
    expect(page.locator("tr.ev-timer")).to_contain_text("woken by an operator")
    expect(page.locator(".bar.kind-operator")).to_have_count(2)
    shot(page, "execution-history-callback-wake")

    # Re-run with an edited input: the page moves to the new execution, which waits at pay again.
    page.click(".op-buttons [data-op=rerun]")
    expect(page.locator('#dlg-rerun textarea[name="input"]')).to_have_value('{\n  "orderId": "B-1"\n}')
    page.fill('#dlg-rerun textarea[name="input"]', '{"orderId": "B-2"}')
    page.locator("#dlg-rerun [data-confirm]").click()
    rerun = Execution.objects.exclude(pk=execution.pk).get()
    expect(page).to_have_url(f"{page.url.split('/ui/')[0]}/ui/executions/{rerun.pk}/")
    assert (rerun.input, rerun.created_by) == ({"orderId": "B-2"}, "ops")
    page.wait_for_selector("#execution[data-status=WAITING]")

    confirm(page, "cancel", "the compensations of the steps that")
    page.wait_for_selector("#execution[data-status=CANCELLED]")
    assert wait_status(rerun, "CANCELLED").status == "CANCELLED"
    cancel = OperatorAction.objects.get(execution=rerun)
    assert (cancel.kind, cancel.detail["compensate"]) == ("cancel", True)
    expect(page.locator("tr.ev-operator")).to_contain_text("cancel (compensating) by ops")
