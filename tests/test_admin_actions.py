"""The execution admin's actions, posted from the changelist by a staff user, against PostgreSQL.

Each action goes through the same service function as the API (cancel, retry,
retry skipping the failed compensation, wake); the tests check the rows left
behind and the message the operator reads, and that an execution in a state
that refuses the action is reported by id with the reason, never a 500.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.test import Client
from django.utils import timezone

from executions.models import Execution, OperatorAction
from executions.services import start_execution
from tests.support import Reply
from tests.support.definitions import store
from tests.support.engine import drive, history
from tests.support.specs import chain, req, sleep, task

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "/admin/executions/execution/"


@pytest.fixture(autouse=True)
def _loopback_allowed(settings):
    settings.TRAMA_EGRESS_ALLOW = ["127.0.0.1"]


@pytest.fixture
def operator() -> Client:
    """A staff user who may view executions and act on them (the admin is read-only; actions are all it can do)."""
    user = get_user_model().objects.create_user("operator", password="pw-for-tests", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_execution", "act_on_execution"]))
    client = Client()
    client.force_login(user)
    return client


def act(client: Client, action: str, *executions: Execution) -> list[tuple[str, str]]:
    """Post ``action`` on the changelist for ``executions``; the (level, text) messages it left."""
    form = {"action": action, "_selected_action": [str(e.pk) for e in executions], "index": 0}
    answer = client.post(CHANGELIST, form)
    assert answer.status_code == 302, answer.content.decode()[:2000]
    return [(m.level_tag, m.message) for m in get_messages(answer.wsgi_request)]


def status_of(execution: Execution) -> str:
    return Execution.objects.values_list("status", flat=True).get(pk=execution.pk)


def sleeping(service) -> Execution:
    """a (undoable) -> nap (an hour) -> b, parked in the nap."""
    nodes = {
        "a": task(req("POST", service.url + "/a"), next="nap", compensation=req("DELETE", service.url + "/a")),
        "nap": sleep(3600, next="b"),
        "b": task(req("POST", service.url + "/b")),
    }
    return drive(start_execution(store(nodes, "a", name="nap"), {})[0], until={"SLEEPING"})


def succeeded(service) -> Execution:
    execution = drive(start_execution(store(chain(service.url, "a"), "a", name="done"), {})[0])
    assert execution.status == "SUCCEEDED"
    return execution


def failed_forward(service) -> Execution:
    """a -> b, where b answers 400 once and stops without compensating (on_failure: fail)."""
    service.script("POST", "/b", Reply(400))
    nodes = chain(service.url, "a", "b", b={"on_failure": "fail"})
    execution = drive(start_execution(store(nodes, "a", name="stop"), {})[0])
    assert (execution.status, execution.error["node"]) == ("FAILED", "b")
    return execution


def failed_compensation(service) -> Execution:
    """a and b succeed, c fails; b's compensation succeeds, a's fails for good (FAILED)."""
    service.default("DELETE", "/a", Reply(500))
    nodes = {
        "a": task(req("POST", service.url + "/a"), next="b", compensation=req("DELETE", service.url + "/a")),
        "b": task(req("POST", service.url + "/b"), next="c", compensation=req("DELETE", service.url + "/b")),
        "c": task(req("POST", service.url + "/c")),
    }
    service.script("POST", "/c", Reply(400))
    execution = drive(start_execution(store(nodes, "a", name="undo"), {})[0])
    assert (execution.status, execution.error["node"], execution.error["phase"]) == ("FAILED", "a", "compensation")
    return execution


def test_cancel_compensates_then_ends_cancelled(operator, service):
    execution = sleeping(service)
    messages = act(operator, "cancel_selected", execution)
    assert messages == [("success", "Cancelling 1 execution: its compensations run, then it ends CANCELLED.")]
    assert status_of(execution) == "COMPENSATING"
    execution = drive(execution)
    assert execution.status == "CANCELLED"
    assert history(execution) == [
        ("a", "forward", 1, "succeeded"),
        ("nap", "forward", 1, "cancelled"),
        ("a", "compensation", 1, "succeeded"),
    ]


def test_retry_resumes_a_failed_execution_from_the_step_that_failed(operator, service):
    execution = failed_forward(service)
    messages = act(operator, "retry_selected", execution)
    assert messages == [("success", "Retrying 1 execution from the step that failed.")]
    assert status_of(execution) == "RUNNING"
    execution = drive(execution)
    assert execution.status == "SUCCEEDED"
    assert history(execution)[1:] == [("b", "forward", 1, "failed"), ("b", "forward", 2, "succeeded")]


def test_retry_without_skip_calls_the_failed_compensation_again(operator, service):
    execution = failed_compensation(service)
    service.default("DELETE", "/a", Reply(200))
    act(operator, "retry_selected", execution)
    execution = drive(execution)
    assert execution.status == "COMPENSATED"
    assert [r.path for r in service.calls("DELETE")] == ["/b", "/a", "/a"]


def test_retry_skipping_the_failed_compensation_ends_compensated(operator, service):
    execution = failed_compensation(service)
    messages = act(operator, "retry_skipping_compensation_selected", execution)
    assert messages == [("success", "Retrying 1 execution, skipping the compensation that failed.")]
    assert status_of(execution) == "COMPENSATING"
    execution = drive(execution)
    assert execution.status == "COMPENSATED"
    assert [r.path for r in service.calls("DELETE")] == ["/b", "/a"]  # a's compensation is not called again
    assert history(execution)[-1] == ("a", "compensation", 1, "failed")


def test_wake_ends_the_sleep_now(operator, service):
    execution = sleeping(service)
    messages = act(operator, "wake_selected", execution)
    assert messages == [("success", "Woke 1 execution: it goes on at the node after its sleep.")]
    execution.refresh_from_db()
    assert execution.status == "SLEEPING" and execution.due_at <= timezone.now()
    execution = drive(execution)
    assert execution.status == "SUCCEEDED"
    assert [r.path for r in service.calls("POST")] == ["/a", "/b"]


@pytest.mark.parametrize(
    ("action", "verb"),
    [
        ("cancel_selected", "cancel"),
        ("retry_selected", "retry"),
        ("retry_skipping_compensation_selected", "retry"),
        ("wake_selected", "wake"),
    ],
)
def test_a_finished_execution_refuses_every_action_and_is_reported_by_id(operator, service, action, verb):
    execution = succeeded(service)
    messages = act(operator, action, execution)
    assert messages == [("warning", f"Could not {verb} execution {execution.pk}: execution is SUCCEEDED.")]
    assert status_of(execution) == "SUCCEEDED"


def test_a_sleeping_execution_refuses_retry_with_the_reason_and_its_status(operator, service):
    execution = sleeping(service)
    messages = act(operator, "retry_selected", execution)
    reason = "only a FAILED execution can be retried (it is SLEEPING)"
    assert messages == [("warning", f"Could not retry execution {execution.pk}: {reason}.")]
    assert status_of(execution) == "SLEEPING"


def test_a_queued_execution_refuses_wake_with_the_reason_and_its_status(operator, service):
    execution, _ = start_execution(store(chain(service.url, "a"), "a"), {})
    messages = act(operator, "wake_selected", execution)
    assert messages == [
        ("warning", f"Could not wake execution {execution.pk}: execution is not sleeping (it is PENDING).")
    ]
    assert status_of(execution) == "PENDING"


def test_one_refusal_does_not_stop_the_others(operator, service):
    done, asleep = succeeded(service), sleeping(service)
    messages = act(operator, "wake_selected", done, asleep)
    assert sorted(messages) == [
        ("success", "Woke 1 execution: it goes on at the node after its sleep."),
        ("warning", f"Could not wake execution {done.pk}: execution is SUCCEEDED."),
    ]
    assert drive(asleep).status == "SUCCEEDED"


def test_skip_of_a_failed_forward_step_is_refused_with_the_reason(operator, service):
    execution = failed_forward(service)
    messages = act(operator, "retry_skipping_compensation_selected", execution)
    assert messages == [
        (
            "warning",
            f"Could not retry execution {execution.pk}: skip applies to a failed compensation only (it is FAILED).",
        )
    ]
    assert status_of(execution) == "FAILED"


def test_the_changelist_offers_every_action_in_plain_words(operator, service):
    succeeded(service)  # the admin shows its actions only above a list with rows
    page = operator.get(CHANGELIST).content.decode()
    for label in (
        "Cancel selected executions (compensating first)",
        "Retry selected FAILED executions from the step that failed",
        "Retry selected FAILED executions, skipping the compensation that failed",
        "Wake selected SLEEPING executions (end the sleep now)",
    ):
        assert label in page


def test_a_user_who_may_only_view_executions_gets_no_action(service):
    succeeded(service)
    viewer = get_user_model().objects.create_user("viewer", password="pw-for-tests", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_execution"))
    client = Client()
    client.force_login(viewer)
    page = client.get(CHANGELIST).content.decode()
    assert "Cancel selected executions" not in page
    assert "Wake selected SLEEPING executions" not in page


def test_an_admin_action_is_recorded_with_the_user_name(operator, service):
    execution = sleeping(service)
    act(operator, "wake_selected", execution)
    assert list(OperatorAction.objects.values_list("execution", "kind", "actor")) == [
        (execution.pk, "wake", "operator")
    ]


def test_the_execution_change_page_lists_its_operator_actions(operator, service):
    execution = sleeping(service)
    act(operator, "cancel_selected", execution)
    admin_user = get_user_model().objects.create_superuser("root", password="pw-for-tests")
    client = Client()
    client.force_login(admin_user)
    page = client.get(f"/admin/executions/execution/{execution.pk}/change/").content.decode()
    assert "Operator actions" in page and "&quot;compensate&quot;: true" in page
