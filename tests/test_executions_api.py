"""The executions API (SPEC sections 3 and 5) over HTTP with a real token, real PostgreSQL and a real service."""

import threading
import uuid
from datetime import UTC, datetime

import pytest
from rest_framework.test import APIClient

from definitions.models import Definition
from definitions.services import store_definition
from executions.models import Execution
from executions.services import advance_execution
from tests.support.engine import drive
from tests.support.service import Reply

URL = "/api/v1/executions/"
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _egress(settings):
    settings.TRAMA_EGRESS_ALLOW = ["127.0.0.1"]


def saga(name: str, base: str = "http://svc.local", *, compensate: bool = False, **first_step) -> dict:
    """A two-step saga: POST {base}/reserve (optionally compensated by DELETE), then POST {base}/charge."""
    reserve = {"id": "reserve", "request": {"method": "POST", "url": f"{base}/reserve"}} | first_step
    if compensate:
        reserve["compensation"] = {"method": "DELETE", "url": f"{base}/reserve"}
    charge = {"id": "charge", "request": {"method": "POST", "url": f"{base}/charge", "body": {"n": "{{payload.n}}"}}}
    return {"name": name, "kind": "saga", "steps": [reserve, charge]}


def sleeper(name: str, base: str, duration_s: float = 60) -> dict:
    """reserve (compensated) -> nap (sleep) -> ship."""
    return {
        "name": name,
        "kind": "graph",
        "start": "reserve",
        "nodes": {
            "reserve": {
                "type": "task",
                "request": {"method": "POST", "url": f"{base}/reserve"},
                "compensation": {"method": "DELETE", "url": f"{base}/reserve"},
                "next": "nap",
            },
            "nap": {"type": "sleep", "duration_s": duration_s, "next": "ship"},
            "ship": {"type": "task", "request": {"method": "POST", "url": f"{base}/ship"}},
        },
    }


def start(api, body, **headers):
    return api.post(URL, body, format="json", **headers)


def started(api, body) -> Execution:
    response = start(api, body)
    assert response.status_code == 202, response.json()
    return Execution.objects.get(pk=response.json()["id"])


def assert_bad_start(api, body, field: str, **kwargs) -> dict:
    before = Execution.objects.count()
    response = api.post(URL, body, **({"format": "json"} | kwargs))
    assert response.status_code == 400, response.content
    payload = response.json()
    assert payload["detail"]
    assert field in {e["path"] for e in payload["errors"]}, payload
    assert Execution.objects.count() == before
    return payload


# --- Starting --------------------------------------------------------------------------------


def test_start_by_name_answers_202_with_location_and_pending_status(api):
    store_definition(saga("orders"))
    response = start(api, {"definition": "orders", "input": {"n": 1}})
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "PENDING"
    assert (body["definition"], body["version"], body["inline"]) == ("orders", 1, False)
    # A small body: the client sent the input; GET on Location has the whole execution.
    assert sorted(body) == ["created_at", "definition", "id", "inline", "status", "version"]
    assert response["Location"] == f"/api/v1/executions/{body['id']}/"
    execution = Execution.objects.get(pk=body["id"])
    assert (execution.status, execution.input, execution.definition.name) == ("PENDING", {"n": 1}, "orders")
    assert api.get(response["Location"]).json()["id"] == body["id"]


def test_start_without_version_pins_the_latest_and_with_version_pins_that_one(api):
    first = store_definition(saga("orders"))
    second = store_definition(saga("orders", base="http://svc.local/v2"))
    latest = started(api, {"definition": "orders", "input": {}})
    pinned = started(api, {"definition": "orders", "version": 1, "input": {}})
    assert latest.definition_id == second.pk
    assert pinned.definition_id == first.pk
    assert api.get(f"{URL}{pinned.pk}/").json()["version"] == 1


def test_start_with_an_inline_spec_stores_it_as_an_inline_definition(api):
    response = start(api, {"spec": saga("adhoc"), "input": {"n": 2}})
    assert response.status_code == 202
    body = response.json()
    assert (body["definition"], body["version"], body["inline"], body["status"]) == ("adhoc", 0, True, "PENDING")
    definition = Execution.objects.get(pk=body["id"]).definition
    assert definition.is_inline and definition.spec["nodes"]["reserve"]["next"] == "charge"
    # The same inline spec again shares the stored row.
    again = started(api, {"spec": saga("adhoc"), "input": {}})
    assert again.definition_id == definition.pk
    assert Definition.objects.filter(is_inline=True).count() == 1


def test_start_of_an_unknown_definition_is_a_400_naming_definition(api):
    payload = assert_bad_start(api, {"definition": "nope", "input": {}}, "definition")
    assert "nope" in payload["detail"]


def test_start_of_a_version_that_does_not_exist_is_a_400_naming_version(api):
    store_definition(saga("orders"))
    assert_bad_start(api, {"definition": "orders", "version": 7, "input": {}}, "version")


@pytest.mark.parametrize("bad_input", [[1, 2], "text", 42, None], ids=["list", "string", "number", "null"])
def test_start_with_input_that_is_not_an_object_is_a_400_naming_input(api, bad_input):
    store_definition(saga("orders"))
    assert_bad_start(api, {"definition": "orders", "input": bad_input}, "input")


def test_start_with_input_over_the_size_limit_is_a_400_naming_input(api, settings):
    settings.TRAMA_MAX_INPUT_BYTES = 200
    store_definition(saga("orders"))
    payload = assert_bad_start(api, {"definition": "orders", "input": {"blob": "x" * 300}}, "input")
    assert "200" in payload["errors"][0]["message"]
    # Just under the limit is fine.
    assert start(api, {"definition": "orders", "input": {"blob": "x" * 100}}).status_code == 202


def test_start_with_both_definition_and_spec_is_a_400(api):
    store_definition(saga("orders"))
    assert_bad_start(api, {"definition": "orders", "spec": saga("adhoc"), "input": {}}, "definition")
    assert not Definition.objects.filter(is_inline=True).exists()


def test_start_with_neither_definition_nor_spec_is_a_400(api):
    assert_bad_start(api, {"input": {"n": 1}}, "definition")


def test_start_with_version_and_inline_spec_is_a_400_naming_version(api):
    assert_bad_start(api, {"spec": saga("adhoc"), "version": 1, "input": {}}, "version")


def test_start_with_an_invalid_inline_spec_is_a_400_listing_each_problem_by_spec_path(api):
    spec = sleeper("broken", "http://svc.local")
    spec["nodes"]["nap"]["next"] = "shipp"
    spec["nodes"]["reserve"]["request"]["method"] = "FETCH"
    payload = assert_bad_start(api, {"spec": spec, "input": {}}, "spec")
    text = " ".join(f"{e['path']} {e['message']}" for e in payload["errors"])
    assert "nodes.nap.next" in text and "shipp" in text
    assert "nodes.reserve.request.method" in text
    assert Definition.objects.count() == 0


def test_start_with_malformed_json_is_a_400(api):
    before = Execution.objects.count()
    response = api.post(URL, '{"definition": "orders", "input": {', content_type="application/json")
    assert response.status_code == 400
    assert "JSON" in response.json()["detail"]
    assert Execution.objects.count() == before


def test_start_with_a_non_json_content_type_is_a_415(api):
    store_definition(saga("orders"))
    response = api.post(URL, "definition=orders", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert response.json()["detail"]
    assert Execution.objects.count() == 0


def test_same_idempotency_key_and_body_returns_the_first_execution(api):
    store_definition(saga("orders"))
    body = {"definition": "orders", "input": {"n": 1}}
    first = start(api, body, HTTP_IDEMPOTENCY_KEY="order-1")
    again = start(api, body, HTTP_IDEMPOTENCY_KEY="order-1")
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json()["id"] == first.json()["id"]
    assert again["Location"] == first["Location"]
    assert Execution.objects.count() == 1
    # Another key is another execution.
    assert start(api, body, HTTP_IDEMPOTENCY_KEY="order-2").json()["id"] != first.json()["id"]
    assert Execution.objects.count() == 2


def test_same_idempotency_key_with_another_body_is_a_409(api):
    store_definition(saga("orders"))
    first = start(api, {"definition": "orders", "input": {"n": 1}}, HTTP_IDEMPOTENCY_KEY="order-1")
    other = start(api, {"definition": "orders", "input": {"n": 2}}, HTTP_IDEMPOTENCY_KEY="order-1")
    assert first.status_code == 202
    assert other.status_code == 409
    assert "Idempotency-Key" in other.json()["detail"]
    assert list(Execution.objects.values_list("input", flat=True)) == [{"n": 1}]


def test_same_idempotency_key_and_body_returns_the_first_execution_after_a_new_version(api):
    store_definition(saga("orders"))
    body = {"definition": "orders", "input": {"n": 1}}
    first = start(api, body, HTTP_IDEMPOTENCY_KEY="order-1")
    store_definition(saga("orders", base="http://svc.local/v2"))
    again = start(api, body, HTTP_IDEMPOTENCY_KEY="order-1")
    assert again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert Execution.objects.count() == 1


# --- Listing and reading ---------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_list_filters_by_one_status_or_a_comma_list(api, service):
    store_definition(saga("orders", service.url, compensate=True))
    ok = drive(started(api, {"definition": "orders", "input": {"n": 1}}))
    service.script("POST", "/charge", Reply(400, {"error": "declined"}))
    bad = drive(started(api, {"definition": "orders", "input": {"n": 2}}))
    pending = started(api, {"definition": "orders", "input": {"n": 3}})
    assert (ok.status, bad.status, pending.status) == ("SUCCEEDED", "COMPENSATED", "PENDING")

    def ids(query):
        response = api.get(URL, query)
        assert response.status_code == 200, response.json()
        return {row["id"] for row in response.json()["results"]}

    assert ids({"status": "SUCCEEDED"}) == {str(ok.pk)}
    assert ids({"status": "COMPENSATED,PENDING"}) == {str(bad.pk), str(pending.pk)}
    assert ids({"status": "failed"}) == set()
    assert ids({}) == {str(ok.pk), str(bad.pk), str(pending.pk)}


def test_list_with_an_unknown_status_is_a_400_naming_status(api):
    response = api.get(URL, {"status": "SUCCEEDED,DONE"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["path"] == "status"
    assert "DONE" in response.json()["errors"][0]["message"]


def test_list_filters_by_definition_name(api):
    store_definition(saga("orders"))
    store_definition(saga("refunds"))
    mine = {str(started(api, {"definition": "orders", "input": {}}).pk) for _ in range(2)}
    started(api, {"definition": "refunds", "input": {}})
    rows = api.get(URL, {"definition": "orders"}).json()["results"]
    assert {r["id"] for r in rows} == mine
    assert {r["definition"] for r in rows} == {"orders"}
    assert api.get(URL, {"definition": "nothing"}).json()["count"] == 0


def test_list_filters_by_creation_time_range(api):
    store_definition(saga("orders"))
    executions = [started(api, {"definition": "orders", "input": {"day": day}}) for day in (1, 2, 3)]
    for execution, day in zip(executions, (1, 2, 3), strict=True):
        Execution.objects.filter(pk=execution.pk).update(created_at=datetime(2024, 1, day, 12, tzinfo=UTC))

    def days(query):
        response = api.get(URL, query)
        assert response.status_code == 200, response.json()
        return sorted(row["input"]["day"] for row in response.json()["results"])

    assert days({"created_after": "2024-01-02T00:00:00Z"}) == [2, 3]
    assert days({"created_before": "2024-01-02T00:00:00Z"}) == [1]
    assert days({"created_after": "2024-01-01T13:00:00+00:00", "created_before": "2024-01-03T00:00:00Z"}) == [2]


OUT_OF_RANGE = "is out of range: it must fall within the years 1 to 9999 in UTC"


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("created_before", "9999-12-31T23:59:59-23:59", OUT_OF_RANGE),
        ("created_after", "0001-01-01T00:00:00+23:59", OUT_OF_RANGE),
        ("created_after", "yesterday", "must be an ISO-8601 date-time"),
        ("created_before", "2024-13-01T00:00:00Z", "must be an ISO-8601 date-time"),
    ],
)
def test_list_with_a_date_that_is_no_utc_instant_is_a_400_naming_the_parameter(api, name, value, reason):
    response = api.get(URL, {name: value})
    assert response.status_code == 400
    message = f"{name} {reason}, got {value!r}"
    assert response.json() == {"detail": message, "errors": [{"path": name, "message": message}]}


def test_list_with_include_branches_neither_true_nor_false_is_a_400_naming_it(api):
    response = api.get(URL, {"include_branches": "maybe"})
    assert response.status_code == 400
    message = "include_branches must be true or false, got 'maybe'"
    assert response.json() == {"detail": message, "errors": [{"path": "include_branches", "message": message}]}
    assert api.get(URL, {"include_branches": "false"}).status_code == 200


def test_list_with_a_date_at_the_end_of_year_9999_in_utc_is_fine(api):
    store_definition(saga("orders"))
    started(api, {"definition": "orders", "input": {}})
    assert api.get(URL, {"created_before": "9999-12-31T23:59:59Z"}).json()["count"] == 1
    assert api.get(URL, {"created_after": "0001-01-01T00:00:00Z"}).json()["count"] == 1
    assert api.get(URL, {"created_after": "2024-01-01T00:00:00"}).json()["count"] == 1  # no zone: UTC


def test_list_is_paginated_with_limit_offset_and_count_newest_first(api):
    store_definition(saga("orders"))
    created = [str(started(api, {"definition": "orders", "input": {"i": i}}).pk) for i in range(5)]
    first = api.get(URL, {"limit": 2}).json()
    assert first["count"] == 5
    assert [r["id"] for r in first["results"]] == created[::-1][:2]
    assert first["next"] and first["previous"] is None
    last = api.get(URL, {"limit": 2, "offset": 4}).json()
    assert [r["id"] for r in last["results"]] == [created[0]]
    assert last["next"] is None and last["count"] == 5


def test_detail_of_an_unknown_execution_is_a_404(api):
    response = api.get(f"{URL}{uuid.uuid4()}/")
    assert response.status_code == 404
    assert response.json()["detail"]


@pytest.mark.parametrize("suffix", ["", "steps/"])
def test_detail_with_a_path_that_is_not_a_uuid_is_a_404(api, suffix):
    assert api.get(f"{URL}not-a-uuid/{suffix}").status_code == 404
    assert api.get(f"{URL}{uuid.uuid4()}/{suffix}").status_code == 404


@pytest.mark.parametrize("suffix", ["", "steps/"])
def test_a_path_that_is_not_a_uuid_answers_a_json_404(api, suffix):
    response = api.get(f"{URL}not-a-uuid/{suffix}")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["detail"]


@pytest.mark.django_db(transaction=True)
def test_detail_shows_status_input_output_and_timestamps(api, service):
    store_definition(saga("orders", service.url))
    execution = drive(started(api, {"definition": "orders", "input": {"n": 9}}))
    body = api.get(f"{URL}{execution.pk}/").json()
    assert body["status"] == "SUCCEEDED"
    assert body["input"] == {"n": 9}
    assert body["output"] == {"ok": True, "path": "/charge", "echo": {"n": 9}}
    assert body["error"] is None
    assert body["current_node"] == "charge"
    assert body["created_at"] <= body["started_at"] <= body["finished_at"]


@pytest.mark.django_db(transaction=True)
def test_steps_endpoint_returns_the_history_in_seq_order_with_requests_and_responses(api, service):
    store_definition(saga("orders", service.url))
    service.script("POST", "/reserve", Reply(201, {"id": "r-1"}))
    execution = drive(started(api, {"definition": "orders", "input": {"n": 4}}))
    assert execution.status == "SUCCEEDED"
    response = api.get(f"{URL}{execution.pk}/steps/")
    assert response.status_code == 200
    steps = response.json()
    assert [(s["seq"], s["node_id"], s["phase"], s["attempt"], s["status"]) for s in steps] == [
        (1, "reserve", "forward", 1, "succeeded"),
        (2, "charge", "forward", 1, "succeeded"),
    ]
    reserve, charge = steps
    assert reserve["request"]["url"] == f"{service.url}/reserve"
    assert (reserve["response_status"], reserve["response_body"]) == (201, {"id": "r-1"})
    assert charge["request"]["body"] == {"n": 4}
    assert charge["response_status"] == 200 and charge["response_body"]["echo"] == {"n": 4}
    assert all(s["started_at"] <= s["finished_at"] for s in steps)


# --- Cancel, retry, wake ---------------------------------------------------------------------


def sleeping(api, service, name="napper") -> Execution:
    store_definition(sleeper(name, service.url))
    execution = drive(started(api, {"definition": name, "input": {}}), until={"SLEEPING"})
    assert execution.status == "SLEEPING"
    return execution


@pytest.mark.django_db(transaction=True)
def test_cancel_compensates_what_succeeded_and_ends_cancelled(api, service):
    execution = sleeping(api, service)
    response = api.post(f"{URL}{execution.pk}/cancel/", {}, format="json")
    assert response.status_code == 202
    assert response.json()["status"] == "COMPENSATING"
    execution = drive(execution)
    assert execution.status == "CANCELLED"
    assert [(c.method, c.path) for c in service.requests] == [("POST", "/reserve"), ("DELETE", "/reserve")]
    statuses = [(s.node_id, s.phase, s.status) for s in execution.steps.order_by("seq")]
    assert statuses == [
        ("reserve", "forward", "succeeded"),
        ("nap", "forward", "cancelled"),
        ("reserve", "compensation", "succeeded"),
    ]


@pytest.mark.django_db(transaction=True)
def test_cancel_without_compensation_ends_cancelled_at_once(api, service):
    execution = sleeping(api, service)
    response = api.post(f"{URL}{execution.pk}/cancel/", {"compensate": False}, format="json")
    assert response.status_code == 202
    assert response.json()["status"] == "CANCELLED"
    execution.refresh_from_db()
    assert execution.status == "CANCELLED" and execution.finished_at is not None
    assert [c.path for c in service.requests] == ["/reserve"]  # no compensation call


@pytest.mark.django_db(transaction=True)
def test_cancel_during_a_running_call_takes_effect_when_the_call_is_written(api, service):
    store_definition(saga("orders", service.url, compensate=True))
    service.script("POST", "/reserve", Reply(200, {"id": "r-1"}, delay_s=0.6))
    execution = started(api, {"definition": "orders", "input": {"n": 1}})
    worker = threading.Thread(target=advance_execution, args=(execution.pk,))
    worker.start()
    try:
        service.wait_for_calls(1, path="/reserve", timeout=5)
        response = api.post(f"{URL}{execution.pk}/cancel/", {}, format="json")
        assert response.status_code == 202
        assert response.json()["status"] == "RUNNING"  # the worker holds it; the cancel waits for its write
    finally:
        worker.join(10)
    execution = drive(execution)
    assert execution.status == "CANCELLED"
    assert [(c.method, c.path) for c in service.requests] == [("POST", "/reserve"), ("DELETE", "/reserve")]
    assert execution.cancel_request is None


@pytest.mark.django_db(transaction=True)
def test_cancel_accepted_during_the_last_call_is_not_lost(api, service):
    store_definition(saga("orders", service.url, compensate=True))
    service.script("POST", "/charge", Reply(200, {"charged": True}, delay_s=0.6))
    execution = started(api, {"definition": "orders", "input": {"n": 1}})
    worker = threading.Thread(target=advance_execution, args=(execution.pk,))
    worker.start()  # one claim: calls /reserve, then /charge (slow, the last node)
    try:
        service.wait_for_calls(1, path="/charge", timeout=5)
        response = api.post(f"{URL}{execution.pk}/cancel/", {}, format="json")
        assert response.status_code == 202  # accepted while the execution is still running
    finally:
        worker.join(10)
    execution = drive(execution)
    # An accepted cancel must take effect: the execution ends CANCELLED and reserve is undone.
    assert execution.status == "CANCELLED"
    assert ("DELETE", "/reserve") in [(c.method, c.path) for c in service.requests]


@pytest.mark.django_db(transaction=True)
def test_cancel_of_a_finished_execution_is_a_409(api, service):
    store_definition(saga("orders", service.url))
    execution = drive(started(api, {"definition": "orders", "input": {"n": 1}}))
    response = api.post(f"{URL}{execution.pk}/cancel/", {}, format="json")
    assert response.status_code == 409
    assert "SUCCEEDED" in response.json()["detail"]
    execution.refresh_from_db()
    assert execution.status == "SUCCEEDED"


def test_cancel_of_an_unknown_execution_is_a_404(api):
    assert api.post(f"{URL}{uuid.uuid4()}/cancel/", {}, format="json").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_retry_resumes_a_failed_execution_from_the_failed_step(api, service):
    store_definition(saga("orders", service.url, on_failure="fail"))
    service.script("POST", "/reserve", Reply(400, {"error": "no stock"}))
    execution = drive(started(api, {"definition": "orders", "input": {"n": 1}}))
    assert execution.status == "FAILED"
    assert execution.error["node"] == "reserve"

    response = api.post(f"{URL}{execution.pk}/retry/", {}, format="json")
    assert response.status_code == 202
    assert response.json()["status"] == "RUNNING"
    execution = drive(execution)
    assert execution.status == "SUCCEEDED"
    assert [c.path for c in service.requests] == ["/reserve", "/reserve", "/charge"]
    assert [(s.node_id, s.attempt, s.status) for s in execution.steps.order_by("seq")] == [
        ("reserve", 1, "failed"),
        ("reserve", 2, "succeeded"),
        ("charge", 1, "succeeded"),
    ]


@pytest.mark.django_db(transaction=True)
def test_retry_of_an_execution_that_did_not_fail_is_a_409(api, service):
    store_definition(saga("orders", service.url))
    execution = drive(started(api, {"definition": "orders", "input": {"n": 1}}))
    response = api.post(f"{URL}{execution.pk}/retry/", {}, format="json")
    assert response.status_code == 409
    execution.refresh_from_db()
    assert execution.status == "SUCCEEDED"
    pending = started(api, {"definition": "orders", "input": {"n": 2}})
    assert api.post(f"{URL}{pending.pk}/retry/", {}, format="json").status_code == 409


@pytest.mark.django_db(transaction=True)
def test_retry_with_skip_passes_over_a_compensation_that_failed_for_good(api, service):
    source = {
        "name": "two-comps",
        "kind": "saga",
        "steps": [
            {
                "id": "a",
                "request": {"method": "POST", "url": f"{service.url}/a"},
                "compensation": {"method": "DELETE", "url": f"{service.url}/a"},
            },
            {
                "id": "b",
                "request": {"method": "POST", "url": f"{service.url}/b"},
                "compensation": {"method": "DELETE", "url": f"{service.url}/b"},
            },
            {"id": "c", "request": {"method": "POST", "url": f"{service.url}/c"}},
        ],
    }
    store_definition(source)
    service.script("POST", "/c", Reply(400))
    service.script("DELETE", "/b", Reply(400, {"error": "cannot undo"}))
    execution = drive(started(api, {"definition": "two-comps", "input": {}}))
    assert execution.status == "FAILED"
    assert execution.error["phase"] == "compensation"

    # skip on a forward failure is refused; here it applies to the failed compensation of b.
    response = api.post(f"{URL}{execution.pk}/retry/", {"skip": True}, format="json")
    assert response.status_code == 202
    assert response.json()["status"] == "COMPENSATING"
    execution = drive(execution)
    assert execution.status == "COMPENSATED"
    assert [(c.method, c.path) for c in service.requests] == [
        ("POST", "/a"),
        ("POST", "/b"),
        ("POST", "/c"),
        ("DELETE", "/b"),
        ("DELETE", "/a"),
    ]


@pytest.mark.django_db(transaction=True)
def test_retry_with_skip_of_a_forward_failure_is_a_409(api, service):
    store_definition(saga("orders", service.url, on_failure="fail"))
    service.script("POST", "/reserve", Reply(400))
    execution = drive(started(api, {"definition": "orders", "input": {"n": 1}}))
    assert execution.status == "FAILED"
    response = api.post(f"{URL}{execution.pk}/retry/", {"skip": True}, format="json")
    assert response.status_code == 409
    execution.refresh_from_db()
    assert execution.status == "FAILED"


@pytest.mark.django_db(transaction=True)
def test_wake_ends_a_sleep_now_and_the_execution_runs_on(api, service):
    execution = sleeping(api, service)
    assert api.get(f"{URL}{execution.pk}/").json()["wake_at"] is not None
    response = api.post(f"{URL}{execution.pk}/wake/", format="json")
    assert response.status_code == 202
    execution = drive(execution, timeout=5)  # the sleep was 60 s
    assert execution.status == "SUCCEEDED"
    assert [c.path for c in service.requests] == ["/reserve", "/ship"]
    nap = execution.steps.get(node_id="nap")
    assert nap.status == "succeeded"


@pytest.mark.django_db(transaction=True)
def test_wake_of_an_execution_that_is_not_sleeping_is_a_409(api, service):
    store_definition(saga("orders", service.url))
    pending = started(api, {"definition": "orders", "input": {"n": 1}})
    assert api.post(f"{URL}{pending.pk}/wake/", format="json").status_code == 409
    finished = drive(pending)
    response = api.post(f"{URL}{finished.pk}/wake/", format="json")
    assert response.status_code == 409
    finished.refresh_from_db()
    assert finished.status == "SUCCEEDED"


# --- Authentication --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", ""),
        ("post", ""),
        ("get", "{id}/"),
        ("get", "{id}/steps/"),
        ("post", "{id}/cancel/"),
        ("post", "{id}/retry/"),
        ("post", "{id}/wake/"),
    ],
)
def test_every_executions_endpoint_without_a_token_is_a_401(api, method, path):
    store_definition(saga("orders"))
    execution = started(api, {"definition": "orders", "input": {}})
    anonymous = APIClient()
    response = getattr(anonymous, method)(URL + path.format(id=execution.pk), {}, format="json")
    assert response.status_code == 401
    assert response.json()["detail"]
    execution.refresh_from_db()
    assert execution.status == "PENDING"
    assert Execution.objects.count() == 1
