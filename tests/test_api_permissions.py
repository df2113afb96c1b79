"""Who may act on executions through the API (executions/permissions.py).

A staff session (the UI's own API calls: session cookie + CSRF token) is held to what the pages ask:
cancel, retry, wake, re-run and complete need ``executions.act_on_execution``. An API token acts as
before. Each case logs in for real (password, session cookie) with CSRF checks on, like a browser,
against executions the real worker code brought to the state each action needs.
"""

from collections.abc import Callable

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from executions.models import Execution, OperatorAction
from executions.services import complete_callback
from tests.support.engine import drive
from tests.test_operator_actions import failed_compensation, waiting

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-tests"
MISSING = "need the permission executions.act_on_execution"


@pytest.fixture
def egress(settings):
    settings.TRAMA_EGRESS_ALLOW = ["127.0.0.1"]


def session(name: str, may_act: bool) -> Client:
    """A real login of a staff user (with or without act_on_execution); CSRF enforced."""
    user = get_user_model().objects.create_user(name, password=PASSWORD, is_staff=True)
    if may_act:
        user.user_permissions.add(Permission.objects.get(codename="act_on_execution"))
    client = Client(enforce_csrf_checks=True)
    assert client.login(username=name, password=PASSWORD)
    return client


def csrf_token(client: Client, execution: Execution) -> str:
    """The token the execution page hands its scripts (staff access is enough to see it)."""
    page = client.get(reverse("ui-execution", args=[execution.pk]))
    assert page.status_code == 200
    return str(page.context["csrf_token"])


def post_action(client: Client, execution: Execution, action: str, body: dict):
    return client.post(
        f"/api/v1/executions/{execution.pk}/{action}/",
        body,
        content_type="application/json",
        headers={"X-CSRFToken": csrf_token(client, execution)},
    )


def sleeping(service) -> Execution:
    """pay's callback answered (by the service layer), then the long sleep."""
    execution = waiting(service)
    complete_callback(execution.pk, outcome="succeeded", body={}, by="setup")
    return drive(execution, until={"SLEEPING"})


# action -> (how to bring an execution to a state it applies to, the body, the OperatorAction kind)
ACTIONS: dict[str, tuple[Callable, dict, str]] = {
    "cancel": (waiting, {"compensate": False}, "cancel"),
    "retry": (failed_compensation, {"skip": True}, "retry_skip"),
    "wake": (sleeping, {}, "wake"),
    "rerun": (waiting, {}, "rerun"),
    "complete": (waiting, {"status": "succeeded", "body": {"paid": 1}}, "complete_callback"),
}


@pytest.mark.parametrize("action", list(ACTIONS))
def test_a_session_without_act_on_execution_is_refused_each_action(action, service, egress):
    prepare, body, _ = ACTIONS[action]
    execution = prepare(service)
    before = Execution.objects.get(pk=execution.pk).status
    viewer = session("vera", may_act=False)

    answer = post_action(viewer, execution, action, body)

    assert answer.status_code == 403, answer.content
    assert answer["Content-Type"] == "application/json"
    assert MISSING in answer.json()["detail"]
    assert Execution.objects.get(pk=execution.pk).status == before
    assert not OperatorAction.objects.exclude(actor="setup").exists()
    assert Execution.objects.count() == 1  # a refused re-run starts nothing


@pytest.mark.parametrize("action", list(ACTIONS))
def test_a_session_with_act_on_execution_does_each_action(action, service, egress):
    prepare, body, kind = ACTIONS[action]
    execution = prepare(service)
    operator = session("ana", may_act=True)

    answer = post_action(operator, execution, action, body)

    assert answer.status_code == 202, answer.content
    actions = OperatorAction.objects.filter(execution=execution).exclude(actor="setup")
    assert list(actions.values_list("kind", "actor")) == [(kind, "ana")]


def test_a_session_action_still_needs_the_csrf_token(service, egress):
    execution = waiting(service)
    operator = session("ana", may_act=True)

    answer = operator.post(f"/api/v1/executions/{execution.pk}/cancel/", {}, content_type="application/json")

    assert answer.status_code == 403
    assert "CSRF" in answer.json()["detail"]
    assert Execution.objects.get(pk=execution.pk).status == "WAITING"


def test_an_api_token_acts_as_before_without_any_django_permission(api, service, egress):
    execution = waiting(service)

    answer = api.post(f"/api/v1/executions/{execution.pk}/cancel/", {"compensate": False}, format="json")

    assert answer.status_code == 202
    assert OperatorAction.objects.get(execution=execution).actor == "token:tests"


def test_a_session_without_act_on_execution_still_reads_stores_and_starts(service, egress):
    """Reading, storing a definition and starting an execution are what every staff user does in the UI
    (the editor, the start page); only acting on an existing execution needs the permission."""
    execution = waiting(service)
    viewer = session("vera", may_act=False)
    token = csrf_token(viewer, execution)
    spec = {"name": "perm-flow", "kind": "graph", "start": "done", "nodes": {"done": {"type": "succeed"}}}

    listed = viewer.get("/api/v1/executions/")
    stored = viewer.post("/api/v1/definitions/", spec, content_type="application/json", headers={"X-CSRFToken": token})
    started = viewer.post(
        "/api/v1/executions/",
        {"definition": "perm-flow", "input": {}},
        content_type="application/json",
        headers={"X-CSRFToken": token},
    )

    assert (listed.status_code, stored.status_code, started.status_code) == (200, 201, 202), started.content
    assert Execution.objects.get(pk=started.json()["id"]).created_by == "vera"


@pytest.mark.parametrize("route", ["retry", "wake"])
def test_the_original_api_actions_take_a_token_not_a_session(route, api, service, egress):
    execution = waiting(service)
    operator = session("ana", may_act=True)

    by_session = operator.post(
        f"/workflows/{execution.pk}/{route}", content_type="application/json",
        headers={"X-CSRFToken": csrf_token(operator, execution)},
    )  # fmt: skip
    by_token = api.post(f"/workflows/{execution.pk}/{route}")

    assert by_session.status_code == 401
    assert by_token.status_code == 409  # a WAITING execution is neither FAILED nor SLEEPING: past the permission
