"""The UI pages through Django's test client: staff login, 404s, the timeline's JSON, session auth for the API."""

import uuid

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from executions.models import Execution, Step
from tests.support.definitions import DefinitionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(db):
    return get_user_model().objects.create_user("ops", password="pw-for-tests", is_staff=True)


@pytest.fixture
def staff_client(staff) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    return client


@pytest.fixture
def execution(db) -> Execution:
    definition = DefinitionFactory(name="orders")
    execution = Execution.objects.create(definition=definition, status="SUCCEEDED", input={"id": 1}, output={"ok": 1})
    Step.objects.create(
        execution=execution, seq=1, node_id="call", node_type="task", attempt=1, status="succeeded",
        request={"method": "POST", "url": "http://svc.local/orders"}, response_status=200, response_body={"ok": 1},
        started_at=execution.created_at, finished_at=execution.created_at,
    )  # fmt: skip
    return execution


# A fixed id no execution has: parametrized ids must be the same in every collecting process (xdist).
UNKNOWN = uuid.UUID("00000000-0000-4000-8000-000000000000")


def _csrf(client: Client) -> str:
    page = client.get(reverse("ui-editor"))
    return str(page.context["csrf_token"])


@pytest.mark.parametrize(
    "url",
    [
        "/ui/editor/",
        "/ui/editor/orders/",
        f"/ui/executions/{UNKNOWN}/",
        f"/ui/executions/{UNKNOWN}/data/",
        "/ui/definitions/orders/diff/",
        "/ui/definitions/orders/diff/1/2/",
    ],
)
def test_pages_redirect_anonymous_users_to_admin_login(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_non_staff_users_are_sent_to_login(client, db):
    client.force_login(get_user_model().objects.create_user("customer", password="x"))
    assert client.get("/ui/editor/").status_code == 302


def test_unknown_execution_is_404(staff_client):
    assert staff_client.get(f"/ui/executions/{uuid.uuid4()}/").status_code == 404
    assert staff_client.get(f"/ui/executions/{uuid.uuid4()}/data/").status_code == 404


def test_unknown_definition_in_editor_is_404(staff_client):
    assert staff_client.get("/ui/editor/nope/").status_code == 404
    DefinitionFactory(name="known")
    assert staff_client.get("/ui/editor/known/7/").status_code == 404


def test_execution_page_embeds_the_timeline_data(staff_client, execution):
    response = staff_client.get(f"/ui/executions/{execution.pk}/")
    assert response.status_code == 200
    assert b'id="execution-data"' in response.content
    assert b"graph_editor/js/execution.js" in response.content


def test_execution_page_embeds_the_statuses_from_the_server(staff_client, execution):
    """The page script reads its final set from here (executions/choices.py), not from a copy of its own."""
    response = staff_client.get(f"/ui/executions/{execution.pk}/")
    assert response.context["statuses"]["final"] == ["CANCELLED", "COMPENSATED", "FAILED", "SUCCEEDED"]
    assert b'id="execution-statuses"' in response.content


def test_execution_data_has_execution_steps_and_spec(staff_client, execution):
    body = staff_client.get(f"/ui/executions/{execution.pk}/data/").json()
    assert set(body) == {
        "execution",
        "steps",
        "branches",
        "spec",
        "is_final",
        "server_time",
        "history",
        "operations",
        "editor",
    }
    assert body["branches"] == []
    assert body["execution"]["id"] == str(execution.pk)
    assert body["execution"]["status"] == "SUCCEEDED"
    assert body["is_final"] is True
    assert body["spec"]["start"] == "call"
    step = body["steps"][0]
    assert step["node_id"] == "call" and step["attempt"] == 1 and step["phase"] == "forward"
    assert step["request"]["url"] == "http://svc.local/orders" and step["response_status"] == 200
    assert step["execution"] == str(execution.pk) and step["branch"] == ""


def _step(execution, seq, node_id, node_type="task", **extra):
    now = timezone.now()
    fields = {"attempt": 1, "status": "succeeded", "started_at": now, "finished_at": now} | extra
    return Step.objects.create(execution=execution, seq=seq, node_id=node_id, node_type=node_type, **fields)


def test_execution_data_includes_the_steps_of_parallel_branches(staff_client, execution):
    """A branch is an execution of its own (parent, branch = its head node); nested forks count too."""
    definition = execution.definition
    _step(execution, 2, "fork", "parallel")
    left = Execution.objects.create(definition=definition, parent=execution, branch="left", status="SUCCEEDED")
    right = Execution.objects.create(definition=definition, parent=execution, branch="right", status="RUNNING",
                                     current_node="inner")  # fmt: skip
    nested = Execution.objects.create(definition=definition, parent=right, branch="deep", status="SUCCEEDED")
    _step(left, 1, "left")
    _step(right, 1, "inner", "parallel")
    _step(nested, 1, "deep")
    other = Execution.objects.create(definition=definition, status="SUCCEEDED")
    _step(other, 1, "unrelated")

    body = staff_client.get(f"/ui/executions/{execution.pk}/data/").json()
    by_branch = {(s["branch"], s["node_id"]): s["execution"] for s in body["steps"]}
    assert by_branch == {
        ("", "call"): str(execution.pk), ("", "fork"): str(execution.pk), ("left", "left"): str(left.pk),
        ("right", "inner"): str(right.pk), ("deep", "deep"): str(nested.pk),
    }  # fmt: skip
    branches = {b["branch"]: b for b in body["branches"]}
    assert set(branches) == {"left", "right", "deep"}
    assert branches["deep"]["parent"] == str(right.pk)
    assert branches["right"]["status"] == "RUNNING" and branches["right"]["current_node"] == "inner"


def test_editor_loads_a_stored_version(staff_client):
    DefinitionFactory(name="orders", version=1)
    DefinitionFactory(name="orders", version=2)
    response = staff_client.get("/ui/editor/orders/")
    assert response.context["loaded"]["version"] == 2
    assert staff_client.get("/ui/editor/orders/1/").context["loaded"]["version"] == 1
    assert staff_client.get("/ui/editor/").context["loaded"] is None


def test_editor_lists_the_versions_to_compare(staff_client):
    DefinitionFactory(name="orders", version=1)
    DefinitionFactory(name="orders", version=2)
    response = staff_client.get("/ui/editor/orders/1/")
    assert response.context["versions"] == [1, 2]
    assert response.context["urls"]["diff"] == "/ui/definitions/orders/diff/{a}/{b}/"
    assert response.context["urls"]["simulate"] == reverse("definition-simulate")
    assert b'data-action="compare"' in response.content
    single = staff_client.get("/ui/editor/")
    assert single.context["versions"] == [] and b'data-action="compare"' not in single.content


def test_diff_page_defaults_to_the_latest_two_versions(staff_client):
    for version in (1, 2, 3):
        DefinitionFactory(name="orders", version=version)
    config = staff_client.get("/ui/definitions/orders/diff/").context["config"]
    assert (config["from"], config["to"], config["versions"]) == (2, 3, [1, 2, 3])
    assert config["urls"] == {
        "diff": "/api/v1/definitions/orders/versions/{a}/diff/{b}/",
        "version": "/api/v1/definitions/orders/versions/{n}/",
        "page": "/ui/definitions/orders/diff/{a}/{b}/",
        "editor": "/ui/editor/orders/{n}/",
    }
    response = staff_client.get("/ui/definitions/orders/diff/3/1/")
    assert (response.context["config"]["from"], response.context["config"]["to"]) == (3, 1)
    assert b'id="diff-config"' in response.content and b"graph_editor/js/diff.js" in response.content


def test_diff_page_of_an_unknown_name_or_version_is_404(staff_client):
    assert staff_client.get("/ui/definitions/nope/diff/").status_code == 404
    DefinitionFactory(name="orders", version=1)
    assert staff_client.get("/ui/definitions/orders/diff/").status_code == 200  # one version: v1 against itself
    assert staff_client.get("/ui/definitions/orders/diff/1/2/").status_code == 404


def test_start_page_starts_an_execution_and_opens_its_timeline(staff_client):
    DefinitionFactory(name="orders")
    url = reverse("ui-start", args=["orders", 1])
    response = staff_client.post(url, {"input": '{"orderId": 5}', "csrfmiddlewaretoken": _csrf(staff_client)})
    execution = Execution.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/ui/executions/{execution.pk}/"
    assert execution.input == {"orderId": 5} and execution.created_by == "ops"


def test_start_page_starts_with_the_empty_object_it_offers(staff_client):
    """The form opens with ``{}``: submitting it as it is starts an execution (it was "This field is required.")."""
    DefinitionFactory(name="orders")
    url = reverse("ui-start", args=["orders", 1])
    assert b"{}</textarea>" in staff_client.get(url).content
    response = staff_client.post(url, {"input": "{}", "csrfmiddlewaretoken": _csrf(staff_client)})
    assert response.status_code == 302
    assert Execution.objects.get().input == {}


@pytest.mark.parametrize(("typed", "message"), [("[1, 2]", b"must be a JSON object"), ("[]", b"must be a JSON object"),
                                                ("", b"This field is required.")])  # fmt: skip
def test_start_page_refuses_input_that_is_not_an_object(staff_client, typed, message):
    DefinitionFactory(name="orders")
    url = reverse("ui-start", args=["orders", 1])
    response = staff_client.post(url, {"input": typed, "csrfmiddlewaretoken": _csrf(staff_client)})
    assert response.status_code == 200 and message in response.content
    assert not Execution.objects.exists()


def test_staff_session_calls_the_api_with_csrf(staff_client):
    body = {"rule": {"==": [{"var": "a"}, 1]}, "data": {"a": 1}}
    url = reverse("expression-evaluate")
    refused = staff_client.post(url, body, content_type="application/json")
    assert refused.status_code == 403  # the session needs the CSRF token
    ok = staff_client.post(url, body, content_type="application/json", headers={"X-CSRFToken": _csrf(staff_client)})
    assert ok.status_code == 200 and ok.json() == {"result": True}


def test_staff_session_stores_a_definition_as_the_user(staff_client):
    source = {
        "name": "ui-made",
        "kind": "saga",
        "steps": [{"id": "a", "request": {"method": "GET", "url": "http://x/"}}],
    }
    response = staff_client.post(
        reverse("definition-list"),
        source,
        content_type="application/json",
        headers={"X-CSRFToken": _csrf(staff_client)},
    )
    assert response.status_code == 201
    assert response.json()["created_by"] == "ops"


def test_session_of_a_non_staff_user_gets_no_api_access(db):
    client = Client()
    client.force_login(get_user_model().objects.create_user("customer", password="x"))
    assert client.get(reverse("definition-list")).status_code == 401


def test_admin_links_to_the_ui(staff, execution):
    staff.is_superuser = True
    staff.save()
    client = Client()
    client.force_login(staff)
    definitions = client.get(reverse("admin:definitions_definition_changelist")).content.decode()
    assert "/ui/editor/orders/1/" in definitions and "/ui/definitions/orders/1/start/" in definitions
    executions = client.get(reverse("admin:executions_execution_changelist")).content.decode()
    assert f"/ui/executions/{execution.pk}/" in executions
