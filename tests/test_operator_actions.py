"""Operator actions (cancel, retry, retry skipping, wake, re-run, complete a callback by hand): the API, the
execution page's forms, their OperatorAction trace, and the event history built from what is recorded.

Executions are driven by the real worker code (tests.support.engine.drive) against a real HTTP service.
"""

import time

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from definitions.services import definition_by_id, store_definition
from executions.models import Execution, OperatorAction
from executions.services import advance_execution, start_execution
from tests.support.engine import drive
from tests.support.service import Reply

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def forget_definitions():
    """The worker keeps definitions by id; rolled-back tests reuse ids (each test here stores another spec)."""
    definition_by_id.cache_clear()
    yield
    definition_by_id.cache_clear()


def saga(url: str, name: str = "ops-saga") -> dict:
    """reserve (compensated by DELETE) -> charge; charge failing for good compensates reserve."""
    return {
        "name": name,
        "kind": "graph",
        "start": "reserve",
        "nodes": {
            "reserve": {
                "type": "task",
                "request": {"method": "POST", "url": f"{url}/reserve"},
                "compensation": {"method": "DELETE", "url": f"{url}/reserve"},
                "next": "charge",
            },
            "charge": {"type": "task", "request": {"method": "POST", "url": f"{url}/charge"},
                       "retry": {"max_attempts": 2, "backoff_s": 0.05}},
        },
    }  # fmt: skip


def waiting_flow(url: str) -> dict:
    """pay (async, the service never calls back) -> cool (a long sleep) -> ship."""
    return {
        "name": "ops-wait",
        "kind": "graph",
        "start": "pay",
        "nodes": {
            "pay": {"type": "async_task", "request": {"method": "POST", "url": f"{url}/pay"}, "timeout_s": 900,
                    "next": "cool"},
            "cool": {"type": "sleep", "duration_s": 600, "next": "ship"},
            "ship": {"type": "task", "request": {"method": "POST", "url": f"{url}/ship"}},
        },
    }  # fmt: skip


@pytest.fixture
def egress(settings):
    settings.TRAMA_EGRESS_ALLOW = ["127.0.0.1"]


def failed_compensation(service) -> Execution:
    """An execution FAILED because the compensation of reserve failed for good."""
    service.default("POST", "/reserve", Reply(200, {"id": "r-1"}))
    service.default("POST", "/charge", Reply(400, {"error": "card declined"}))
    service.default("DELETE", "/reserve", Reply(500, {"error": "inventory down"}))
    execution, _ = start_execution(store_definition(saga(service.url)), {"orderId": "A-17"})
    assert drive(execution).status == "FAILED"
    return execution


def waiting(service) -> Execution:
    service.default("POST", "/pay", Reply(202, {"accepted": True}))
    service.default("POST", "/ship", Reply(200, {"shipped": True}))
    execution, _ = start_execution(store_definition(waiting_flow(service.url)), {"orderId": "A-18"})
    return drive(execution, until={"WAITING"})


# --- the API ---------------------------------------------------------------------------------------


def test_api_retry_skipping_the_failed_compensation_is_recorded_with_the_token_name(api, service, egress):
    execution = failed_compensation(service)

    answer = api.post(f"/api/v1/executions/{execution.pk}/retry/", {"skip": True}, format="json")

    assert answer.status_code == 202
    action = OperatorAction.objects.get(execution=execution)
    assert (action.kind, action.actor, action.detail) == ("retry_skip", "token:tests", {})
    assert drive(execution).status == "COMPENSATED"
    assert len(service.calls("DELETE", "/reserve")) == 1  # skipped, not run again


def test_a_refused_action_leaves_no_trace(api, service, egress):
    service.default("POST", "/reserve", Reply(200, {"id": "r-1"}))
    service.default("POST", "/charge", Reply(200, {"ok": True}))
    execution, _ = start_execution(store_definition(saga(service.url)), {})
    assert drive(execution).status == "SUCCEEDED"

    for action in ("retry", "wake", "cancel", "complete"):
        body = {"status": "succeeded"} if action == "complete" else {}
        answer = api.post(f"/api/v1/executions/{execution.pk}/{action}/", body, format="json")
        assert answer.status_code == 409, (action, answer.json())
    assert not OperatorAction.objects.exists()


def test_api_completes_a_waiting_callback_by_hand_with_secrets_masked(api, service, egress, monkeypatch):
    monkeypatch.setenv("TRAMA_SECRET_PAY_KEY", "pk-live-123456")
    execution = waiting(service)

    body = {"paid": True, "note": "used pk-live-123456"}
    answer = api.post(f"/api/v1/executions/{execution.pk}/complete/", {"status": "succeeded", "body": body}, "json")

    assert answer.status_code == 202, answer.json()
    assert drive(execution, until={"SLEEPING"}).status == "SLEEPING"  # pay succeeded, cool sleeps
    pay = execution.steps.get(node_id="pay")
    assert (pay.status, pay.detail["callback"]) == ("succeeded", {"paid": True, "note": "used ***"})
    action = OperatorAction.objects.get(execution=execution)
    assert action.kind == "complete_callback"
    masked = {"paid": True, "note": "used ***"}
    assert action.detail == {"node": "pay", "attempt": 1, "outcome": "succeeded", "body": masked}
    again = api.post(f"/api/v1/executions/{execution.pk}/complete/", {"status": "failed"}, format="json")
    assert again.status_code == 409  # it no longer waits for a callback


def test_api_rerun_with_an_edited_input_on_the_latest_version(api, service, egress):
    service.default("POST", "/reserve", Reply(200, {"id": "r-1"}))
    service.default("POST", "/charge", Reply(200, {"ok": True}))
    first, _ = start_execution(store_definition(saga(service.url)), {"orderId": "A-1"})
    drive(first)
    store_definition(saga(service.url) | {"description": "v2"})

    answer = api.post(f"/api/v1/executions/{first.pk}/rerun/", {"input": {"orderId": "A-2"}, "latest": True}, "json")

    assert answer.status_code == 202
    rerun = Execution.objects.get(pk=answer.json()["id"])
    assert (rerun.input, rerun.definition.version, rerun.created_by) == ({"orderId": "A-2"}, 2, "token:tests")
    action = OperatorAction.objects.get(execution=first)
    assert action.detail == {"execution": str(rerun.pk), "version": 2, "input_edited": True}
    same = api.post(f"/api/v1/executions/{first.pk}/rerun/", {}, format="json")
    assert Execution.objects.get(pk=same.json()["id"]).input == {"orderId": "A-1"}
    assert Execution.objects.get(pk=same.json()["id"]).definition.version == 1


# --- the page's forms -------------------------------------------------------------------------------


@pytest.fixture
def operator(db) -> Client:
    """A staff user with the act_on_execution permission; the client checks CSRF like a browser."""
    user = get_user_model().objects.create_user("ana", password="pw-for-tests", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="act_on_execution"))
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def csrf_of(client: Client, execution: Execution) -> str:
    page = client.get(reverse("ui-execution", args=[execution.pk]))
    assert page.status_code == 200
    return str(page.context["csrf_token"])


def act(client: Client, execution: Execution, action: str, **data):
    url = reverse("ui-execution-action", args=[execution.pk, action])
    return client.post(url, {"csrfmiddlewaretoken": csrf_of(client, execution), **data}, follow=True)


def test_page_cancel_without_compensating_a_sleeping_execution(operator, service, egress):
    execution = waiting(service)
    act(operator, execution, "complete", target=str(execution.pk), status="succeeded", body='{"paid": 1}')
    assert drive(execution, until={"SLEEPING"}).status == "SLEEPING"

    page = act(operator, execution, "cancel")  # no "compensate" field: the checkbox-less "without compensating"

    assert page.status_code == 200
    assert "Cancel requested." in page.content.decode()
    execution.refresh_from_db()
    assert execution.status == "CANCELLED"
    assert list(OperatorAction.objects.filter(execution=execution).values_list("kind", "actor")) == [
        ("complete_callback", "ana"),
        ("cancel", "ana"),
    ]
    assert OperatorAction.objects.get(kind="cancel").detail == {"compensate": False, "parked": False}
    assert len(service.calls("POST", "/ship")) == 0


def test_page_wake_then_the_history_shows_the_callback_the_timer_and_the_operator(operator, service, egress):
    execution = waiting(service)
    act(operator, execution, "complete", target=str(execution.pk), status="succeeded", body='{"paid": 1}')
    drive(execution, until={"SLEEPING"})
    act(operator, execution, "wake")
    assert drive(execution).status == "SUCCEEDED"

    history = operator.get(reverse("ui-execution-data", args=[execution.pk])).json()["history"]

    kinds = [event["kind"] for event in history]
    assert kinds == ["wait", "operator", "callback", "sleep", "operator", "timer", "attempt"], kinds
    callback = history[2]
    assert callback["title"] == "callback received for pay: succeeded (completed by hand)"
    assert callback["body"] == {"paid": 1}
    assert history[5]["title"] == "timer fired: cool wakes up (woken by an operator)"
    assert history[1]["title"] == "callback completed by hand: pay succeeded by ana"
    assert history[4]["step"].startswith("op:")
    assert all(e["duration_ms"] is not None for e in history if e["kind"] in ("wait", "sleep", "attempt"))


def test_history_shows_a_retry_scheduled_between_two_attempts(operator, service, egress):
    service.default("POST", "/reserve", Reply(200, {"id": "r-1"}))
    service.script("POST", "/charge", Reply(503, {"error": "busy"}))
    service.default("POST", "/charge", Reply(200, {"ok": True}))
    execution, _ = start_execution(store_definition(saga(service.url)), {})
    assert drive(execution).status == "SUCCEEDED"

    history = operator.get(reverse("ui-execution-data", args=[execution.pk])).json()["history"]

    assert [(e["kind"], e["node"], e["status"]) for e in history] == [
        ("attempt", "reserve", "succeeded"),
        ("attempt", "charge", "failed"),
        ("retry", "charge", "scheduled"),
        ("attempt", "charge", "succeeded"),
    ]
    failed, retry, second = history[1:]
    assert retry["at"] == failed["end"] and retry["end"] == second["at"]
    assert failed["response"] == {"status": 503, "headers": failed["response"]["headers"], "body": {"error": "busy"}}


def test_page_shows_only_the_actions_that_apply(operator, service, egress):
    execution = failed_compensation(service)
    data = operator.get(reverse("ui-execution-data", args=[execution.pk])).json()
    assert data["operations"]["ops"] == ["retry", "retry_skip", "rerun"]
    assert data["operations"]["failed_node"] == "reserve"

    page = act(operator, execution, "wake")  # does not apply: a message, not an error page

    assert page.status_code == 200
    assert "Not done: execution is FAILED." in page.content.decode()
    assert not OperatorAction.objects.exists()


def test_page_rerun_takes_the_operator_to_the_new_execution(operator, service, egress):
    execution = failed_compensation(service)

    page = act(operator, execution, "rerun", input='{"orderId": "A-99"}')

    rerun = Execution.objects.exclude(pk=execution.pk).get()
    assert page.redirect_chain[-1][0] == reverse("ui-execution", args=[rerun.pk])
    assert (rerun.input, rerun.created_by) == ({"orderId": "A-99"}, "ana")
    assert OperatorAction.objects.get(execution=execution).detail["execution"] == str(rerun.pk)
    history = operator.get(reverse("ui-execution-data", args=[execution.pk])).json()["history"]
    assert history[-1]["title"] == "re-run by ana"  # its row links to the new execution
    assert history[-1]["link"] == {"url": reverse("ui-execution", args=[rerun.pk]), "text": str(rerun.pk)[:8]}


def test_page_refuses_a_malformed_form_with_a_message(operator, service, egress):
    execution = waiting(service)
    page = act(operator, execution, "complete", target=str(execution.pk), status="maybe", body="[1]")
    text = page.content.decode()
    assert "Not done:" in text and "status:" in text and "body:" in text
    assert Execution.objects.get(pk=execution.pk).status == "WAITING"


def test_page_actions_need_the_permission_not_only_staff(service, egress):
    execution = waiting(service)
    viewer = get_user_model().objects.create_user("viewer", password="pw-for-tests", is_staff=True)
    client = Client(enforce_csrf_checks=True)
    client.force_login(viewer)

    page = client.get(reverse("ui-execution", args=[execution.pk]))
    assert "not act on it" in page.content.decode() and 'data-op="cancel"' not in page.content.decode()
    token = str(page.context["csrf_token"])
    answer = client.post(reverse("ui-execution-action", args=[execution.pk, "cancel"]), {"csrfmiddlewaretoken": token})

    assert answer.status_code == 403
    assert Execution.objects.get(pk=execution.pk).status == "WAITING"


def test_page_actions_need_the_csrf_token(operator, service, egress):
    execution = waiting(service)
    answer = operator.post(reverse("ui-execution-action", args=[execution.pk, "cancel"]), {"compensate": "on"})
    assert answer.status_code == 403
    assert operator.get(reverse("ui-execution-action", args=[execution.pk, "cancel"])).status_code == 405
    assert Execution.objects.get(pk=execution.pk).status == "WAITING"
    assert not OperatorAction.objects.exists()


@pytest.mark.parametrize("levels", [150, 5000])
def test_page_refuses_json_nested_too_deep_with_a_message(operator, service, egress, levels):
    execution = failed_compensation(service)
    deep = '{"a": ' * levels + "1" + "}" * levels

    page = act(operator, execution, "rerun", input=deep)

    assert page.status_code == 200
    assert "Not done: input:" in page.content.decode()
    assert Execution.objects.count() == 1


def parallel_flow(url: str) -> dict:
    """fork: branch pay (async, never called back) and branch audit (a task); then done."""
    return {
        "name": "ops-par",
        "kind": "graph",
        "start": "fork",
        "nodes": {
            "fork": {"type": "parallel", "branches": ["pay", "audit"], "next": "done"},
            "pay": {"type": "async_task", "request": {"method": "POST", "url": f"{url}/pay"}, "timeout_s": 900},
            "audit": {"type": "task", "request": {"method": "POST", "url": f"{url}/audit"}},
            "done": {"type": "succeed"},
        },
    }


def drive_family(root: Execution, until: set[str], branch: str = "", timeout: float = 15) -> Execution:
    """Advance the execution and its branches (the real worker code) until the root's status, or with
    ``branch`` that branch's, is in ``until``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        watched = Execution.objects.filter(parent=root, branch=branch).first() if branch else root
        if watched is root:
            root.refresh_from_db()
        if watched is not None and watched.status in until:
            return watched
        due = Execution.objects.filter(pk__in=Execution.objects.family_ids([root.pk]), due_at__lte=timezone.now())
        for pk in due.values_list("pk", flat=True):
            advance_execution(pk)
        time.sleep(0.01)
    raise AssertionError(f"execution stuck in {watched.status if watched else 'no branch yet'}")


def test_page_completes_the_callback_a_branch_waits_for(operator, service, egress):
    service.default("POST", "/pay", Reply(202, {}))
    service.default("POST", "/audit", Reply(200, {}))
    root, _ = start_execution(store_definition(parallel_flow(service.url)), {})
    pay = drive_family(root, {"WAITING"}, branch="pay")

    targets = operator.get(reverse("ui-execution-data", args=[root.pk])).json()["operations"]["callback_targets"]
    assert targets == [{"id": str(pay.pk), "label": "branch pay: pay (attempt 1)"}]
    act(operator, root, "complete", target=str(pay.pk), status="succeeded", body='{"ok": true}')

    assert drive_family(root, {"SUCCEEDED", "FAILED", "COMPENSATED"}).status == "SUCCEEDED"
    action = OperatorAction.objects.get()
    assert (action.execution_id, action.kind, action.actor) == (pay.pk, "complete_callback", "ana")
    history = operator.get(reverse("ui-execution-data", args=[root.pk])).json()["history"]
    assert any(e["kind"] == "operator" and e["execution"] == str(pay.pk) for e in history)
    assert any(e["kind"] == "callback" and e["branch"] == "pay" for e in history)
