"""The original Trama's HTTP API at /workflows/... (executions/compat/): routes, shapes, codes, statuses.

Shapes per the original's openapi.json and its routes in app/Application.kt; the runs themselves
(real workers, the original's demo scripts replayed) are in tests/test_compat_demos.py.
"""

import base64
import uuid

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from definitions.models import Definition
from definitions.services import store_definition
from executions.callback_tokens import mint_callback_token
from executions.compat.statuses import original_status, status_filter
from executions.models import Execution, ExecutionStatus
from executions.services import start_execution
from trama_project.models import ApiToken

pytestmark = pytest.mark.django_db

SVC = "http://127.0.0.1:9"


def v1(name="orders", version="v1", **changes):
    """A v1 definition in the original's format (SagaDefinition.kt)."""
    call = {"url": f"{SVC}/reserve", "verb": "POST", "body": {"order": "{{payload.order}}"}}
    source = {
        "name": name,
        "version": version,
        "failureHandling": {"type": "retry", "maxAttempts": 1, "delayMillis": 10},
        "steps": [{"name": "reserve", "up": call, "down": {**call, "verb": "DELETE"}}],
    }
    return {**source, **changes}


def v2_async(name="pay"):
    request = {"url": f"{SVC}/pay", "verb": "POST", "body": {"cb": "{{runtime.callback.url}}"}}
    node = {
        "kind": "task",
        "id": "pay",
        "action": {"mode": "async", "request": request, "callback": {"timeoutMillis": 60000}},
    }
    return {
        "name": name,
        "version": "v1",
        "failureHandling": {"type": "retry", "maxAttempts": 0, "delayMillis": 1},
        "entrypoint": "pay",
        "nodes": [node],
    }


def test_every_route_needs_the_api_token_as_bearer_or_as_the_basic_password(api):
    anonymous = APIClient()
    for method, path in [
        ("get", "/workflows"),
        ("post", "/workflows/run"),
        ("get", "/workflows/definitions"),
        ("post", "/workflows/definitions/x/v1/run"),
        ("get", f"/workflows/{uuid.uuid4()}"),
    ]:
        answer = getattr(anonymous, method)(path, {}, format="json")
        assert answer.status_code == 401, (method, path)
        assert answer.json()["errors"]  # the original's shape: a list of text lines
    _, raw = ApiToken.mint("basic")
    basic = APIClient()
    basic.credentials(HTTP_AUTHORIZATION="Basic " + base64.b64encode(f"trama:{raw}".encode()).decode())
    assert basic.get("/workflows").status_code == 200
    wrong = APIClient()
    wrong.credentials(HTTP_AUTHORIZATION="Basic " + base64.b64encode(b"trama:not-a-token").decode())
    assert wrong.get("/workflows").status_code == 401
    assert APIClient().get("/readyz").content == b"ready"  # a probe: no token


def test_definitions_are_created_read_by_id_and_by_name_version_put_and_deleted(api):
    created = api.post("/workflows/definitions", v1(), format="json")
    assert created.status_code == 200
    body = created.json()
    assert set(body) == {"id", "name", "version", "definition", "createdAt", "updatedAt"}
    assert (body["name"], body["version"], body["definition"]) == ("orders", "v1", v1())
    assert api.get(f"/workflows/definitions/{body['id']}").json() == body
    assert api.get("/workflows/definitions/orders/v1").json() == body
    assert api.get("/workflows/definitions/orders/v9").status_code == 204  # the original's "not found"
    assert api.get(f"/workflows/definitions/{uuid.uuid4()}").status_code == 204
    assert api.get("/workflows/definitions/not-a-uuid").json()["errors"] == ["invalid definition id"]

    again = api.post("/workflows/definitions", v1(), format="json")
    assert again.status_code == 409  # the original refuses a second (name, version); ours would version it
    assert again.json()["errors"] == ["definition already exists: orders version v1"]

    chosen = uuid.uuid4()
    put = api.put(f"/workflows/definitions/{chosen}", v1(version="v2"), format="json")
    assert put.status_code == 200 and put.json()["id"] == str(chosen)
    assert api.put(f"/workflows/definitions/{chosen}", v1(version="v3"), format="json").status_code == 409
    assert [d["version"] for d in api.get("/workflows/definitions").json()] == ["v2", "v1"]

    assert api.delete(f"/workflows/definitions/{chosen}").status_code == 204
    assert not Definition.objects.filter(public_id=chosen).exists()
    assert api.delete(f"/workflows/definitions/{chosen}").status_code == 204  # "deleted or not found"


def test_a_definition_executions_ran_is_not_deleted(api):
    definition = store_definition(v1())
    start_execution(definition, {"order": 1})
    answer = api.delete(f"/workflows/definitions/{definition.public_id}")
    assert answer.status_code == 409
    assert "1 execution(s) ran this version" in answer.json()["errors"][0]
    assert Definition.objects.filter(pk=definition.pk).exists()


def test_an_invalid_definition_is_a_400_naming_each_field(api):
    broken = v1(failureHandling={"type": "retry", "maxAttempts": 1})
    broken["steps"][0]["up"]["verb"] = "post"
    answer = api.post("/workflows/definitions", broken, format="json")
    assert answer.status_code == 400
    lines = answer.json()["errors"]
    assert any(line.startswith("failureHandling.delayMillis: ") for line in lines), lines
    assert any(line.startswith("steps[0].up.verb: ") for line in lines), lines
    inline = api.post("/workflows/run", {"definition": broken, "payload": {}}, format="json")
    assert inline.status_code == 400
    assert any(line.startswith("definition.steps[0].up.verb: ") for line in inline.json()["errors"])
    assert api.post("/workflows/run", {"definition": v1(), "payload": [1]}, format="json").json()["errors"] == [
        "payload: must be a JSON object"
    ]
    assert api.post("/workflows/run", {"payload": {}}, format="json").json()["errors"] == [
        "definition: This field is required."
    ]


def test_runs_inline_and_stored_answer_the_new_id_and_its_status(api):
    started = api.post("/workflows/run", {"definition": v1(), "payload": {"order": 7}}, format="json")
    assert started.status_code == 200
    execution = Execution.objects.get(pk=started.json()["id"])
    assert (execution.input, execution.definition.is_inline) == ({"order": 7}, True)

    stored = store_definition(v1(version="2024-01"))
    run = api.post("/workflows/definitions/orders/2024-01/run", {"payload": {"order": 8}}, format="json")
    assert run.status_code == 200
    assert Execution.objects.get(pk=run.json()["id"]).definition == stored
    assert api.post("/workflows/definitions/orders/v404/run", {}, format="json").status_code == 204

    status = api.get(f"/workflows/{run.json()['id']}").json()
    assert set(status) == {
        "id",
        "name",
        "version",
        "status",
        "failureDescription",
        "callbackWarning",
        "startedAt",
        "completedAt",
        "updatedAt",
    }
    assert (status["name"], status["version"], status["status"]) == ("orders", "2024-01", "IN_PROGRESS")
    assert api.get(f"/workflows/{uuid.uuid4()}").status_code == 204  # its clients poll on 204
    assert api.get("/workflows/nope").json()["errors"] == ["invalid workflow id"]
    listed = api.get("/workflows", {"name": "orders", "status": "IN_PROGRESS"}).json()
    assert [row["id"] for row in listed] == [run.json()["id"], started.json()["id"]]
    assert api.get("/workflows", {"status": "DONE"}).status_code == 400
    again = api.post("/workflows/definitions/orders/2024-01/run", {}, format="json", HTTP_IDEMPOTENCY_KEY="k" * 201)
    assert again.json()["errors"] == ["Idempotency-Key: must be at most 200 characters"]
    keyed = [api.post("/workflows/run", {"definition": v1()}, format="json", HTTP_IDEMPOTENCY_KEY="k1") for _ in "ab"]
    assert keyed[0].json() == keyed[1].json()  # the same start, replayed


@pytest.mark.parametrize(
    "status, state, error, original",
    [
        (ExecutionStatus.PENDING, {}, None, "IN_PROGRESS"),
        (ExecutionStatus.RUNNING, {}, None, "IN_PROGRESS"),
        (ExecutionStatus.COMPENSATING, {}, None, "IN_PROGRESS"),
        (ExecutionStatus.SLEEPING, {"sleep": {"kind": "backoff"}}, None, "IN_PROGRESS"),  # the original re-enqueues
        (ExecutionStatus.SLEEPING, {"sleep": {"kind": "node"}}, None, "SLEEPING"),
        (ExecutionStatus.WAITING, {}, None, "WAITING_CALLBACK"),
        (ExecutionStatus.SUCCEEDED, {}, None, "SUCCEEDED"),
        (ExecutionStatus.COMPENSATED, {}, {"message": "HTTP 500"}, "FAILED"),
        (ExecutionStatus.CANCELLED, {}, None, "FAILED"),
        (ExecutionStatus.FAILED, {}, {"message": "HTTP 500", "phase": "compensation"}, "CORRUPTED"),
        (ExecutionStatus.FAILED, {}, {"message": "stopped"}, "FAILED"),
    ],
)
def test_statuses_are_named_as_the_original_names_them_and_filter_alike(status, state, error, original):
    definition = store_definition(v1())
    execution = Execution.objects.create(definition=definition, status=status, state=state, error=error)
    assert original_status(execution) == original
    assert list(Execution.objects.filter(status_filter(original))) == [execution]


def test_retry_and_wake_refuse_what_they_cannot_do_with_a_409(api):
    execution, _ = start_execution(store_definition(v1()), {"order": 1})
    retried = api.post(f"/workflows/{execution.pk}/retry")
    assert retried.status_code == 409 and "cannot retry an execution that is PENDING" in retried.json()["errors"][0]
    assert api.post(f"/workflows/{execution.pk}/wake").status_code == 409
    assert api.post(f"/workflows/{uuid.uuid4()}/wake").status_code == 404
    assert api.post(f"/workflows/{uuid.uuid4()}/retry").status_code == 204


def test_the_callback_route_checks_its_header_and_that_the_token_names_this_execution_and_node(api):
    execution, _ = start_execution(store_definition(v2_async()), {})
    token = mint_callback_token(str(execution.pk), "pay", 1, timezone.now() + timezone.timedelta(minutes=5))
    route = f"/workflows/{execution.pk}/node/pay/callback"
    client = APIClient()  # no API token: the signed callback token is the credential
    assert client.post(route, {}, format="json").json()["errors"] == ["missing X-Callback-Token header"]
    other = client.post(f"/workflows/{execution.pk}/node/ship/callback", {}, format="json", HTTP_X_CALLBACK_TOKEN=token)
    assert other.status_code == 401
    assert other.json()["errors"] == ["callback token was not minted for this execution and node"]
    forged = client.post(route, {}, format="json", HTTP_X_CALLBACK_TOKEN=token[:-2] + "xx")
    assert forged.status_code == 401
    # The execution is not waiting yet (no worker ran it): the token is genuine, the node does not wait.
    assert client.post(route, {}, format="json", HTTP_X_CALLBACK_TOKEN=token).status_code == 409
    assert client.post("/workflows/x/node/pay/callback", {}).status_code == 400


def test_the_compat_api_is_in_our_openapi_schema(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    operations = {op["operationId"] for path in schema["paths"].values() for op in path.values()}
    expected = {
        "runSagaInline",
        "createSagaDefinition",
        "getSagaDefinitionById",
        "putSagaDefinitionById",
        "deleteSagaDefinitionById",
        "getSagaDefinitionByNameVersion",
        "runStoredSaga",
        "listSagaExecutions",
        "getSagaStatus",
        "getSagaSteps",
        "getSagaStepCalls",
        "retrySaga",
        "wakeSaga",
        "receiveNodeCallback",
    }
    assert expected <= operations


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("post", "/workflows/run", [1, 2]),
        ("post", "/workflows/run", "text"),
        ("post", "/workflows/run", {"definition": None}),
        ("post", "/workflows/run", {"definition": "v1", "payload": {}}),
        ("post", "/workflows/run", {"definition": {"nodes": "x"}, "payload": {}}),
        ("post", "/workflows/run", {"definition": {"steps": [{"up": 1}]}, "payload": None}),
        ("post", "/workflows/definitions", [1]),
        ("post", "/workflows/definitions", {"name": ["x"], "version": {"v": 1}, "steps": []}),
        ("post", "/workflows/definitions", {"name": "n", "version": "v1", "nodes": [None, 1, "x"]}),
        ("put", f"/workflows/definitions/{uuid.UUID(int=1)}", 7),
        ("put", "/workflows/definitions/x", {}),
        ("post", "/workflows/definitions/ñ%20x/v%00/run", {"payload": 3}),
        ("post", "/workflows/definitions/a/b/run", [1]),
        ("get", "/workflows?limit=-1", None),
        ("get", "/workflows?offset=99999999999999999999", None),
        ("post", f"/workflows/{uuid.UUID(int=1)}/node/%20/callback", {}),
    ],
)
def test_malformed_input_is_a_4xx_or_the_originals_204_never_a_500(api, method, path, body):
    answer = getattr(api, method)(path, body, format="json") if body is not None else api.get(path)
    assert answer.status_code in (200, 204, 400, 401, 404, 409), answer.content
    if answer.status_code == 400:
        assert answer.json()["errors"]
