"""Engine flows end to end in-process: real PostgreSQL rows, real HTTP to a TestService.

``drive`` runs the real worker code (claim, decide, call, fenced commit) in the
test process; every test checks the rows left behind and the requests the
service received.
"""

from __future__ import annotations

import pytest
from django.core import serializers

from executions.models import Execution, Step
from executions.services import (
    IdempotencyConflict,
    TransitionRefused,
    cancel_execution,
    configured_secrets,
    retry_execution,
    start_execution,
    wake_execution,
)
from tests.support import Reply
from tests.support.definitions import store
from tests.support.engine import drive, history, idempotency_keys
from tests.support.specs import chain, req, retry, sleep, switch, task

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _loopback_allowed(settings):
    settings.TRAMA_EGRESS_ALLOW = ["127.0.0.1"]


def run(definition, payload=None, **kw) -> Execution:
    execution, created = start_execution(definition, payload if payload is not None else {})
    assert created
    return drive(execution, **kw)


def keys_for(execution, *parts: str) -> list[str]:
    return [f"{execution.pk}:{part}" for part in parts]


# --- The order flow: reserve -> switch -> pix | card -> ship -------------------------------------


def order_definition(url: str):
    reserve_body = {"orderId": "{{payload.orderId}}", "items": "{{payload.items}}"}
    pay_body = {"amount": "{{payload.amount}}", "reservation": "{{nodes.reserve.response.body.id}}"}
    nodes = {
        "reserve": task(
            req("POST", url + "/reservations", body=reserve_body),
            next="route",
            compensation=req("DELETE", url + "/reservations/{{nodes.reserve.response.body.id}}"),
        ),
        "route": switch([({"==": [{"var": "payload.method"}, "pix"]}, "pix")], default="card"),
        "pix": task(req("POST", url + "/pix", body=pay_body), next="ship"),
        "card": task(req("POST", url + "/card", body=pay_body | {"brand": "visa"}), next="ship"),
        "ship": task(
            req("POST", url + "/shipments", body={"orderId": "{{payload.orderId}}", "via": "{{payload.method}}"})
        ),
    }
    return store(nodes, "reserve", name="order")


@pytest.mark.parametrize("method", ["pix", "card"])
def test_order_flow_follows_the_switch_and_ships(service, method):
    service.script("POST", "/reservations", Reply(201, {"id": "r-77"}))
    service.default("POST", "/shipments", Reply(200, {"tracking": "T-1"}))
    payload = {"orderId": 991, "items": [{"sku": "A", "qty": 2}], "amount": 150.5, "method": method}
    ex = run(order_definition(service.url), payload)

    assert ex.status == "SUCCEEDED"
    assert ex.output == {"tracking": "T-1"}
    assert ex.error is None and ex.finished_at is not None

    seen = service.requests
    assert [(r.method, r.path) for r in seen] == [
        ("POST", "/reservations"),
        ("POST", f"/{method}"),
        ("POST", "/shipments"),
    ]
    assert seen[0].body == {"orderId": 991, "items": [{"sku": "A", "qty": 2}]}
    expected_pay = {"amount": 150.5, "reservation": "r-77"} | ({"brand": "visa"} if method == "card" else {})
    assert seen[1].body == expected_pay
    assert seen[2].body == {"orderId": 991, "via": method}
    assert idempotency_keys(seen) == keys_for(ex, "reserve:1", f"{method}:1", "ship:1")

    assert history(ex) == [
        ("reserve", "forward", 1, "succeeded"),
        ("route", "forward", 1, "succeeded"),
        (method, "forward", 1, "succeeded"),
        ("ship", "forward", 1, "succeeded"),
    ]
    steps = list(ex.steps.order_by("seq"))
    assert steps[0].response_status == 201 and steps[0].response_body == {"id": "r-77"}
    assert steps[0].request["body"] == {"orderId": 991, "items": [{"sku": "A", "qty": 2}]}
    assert "headers" not in steps[0].request  # none were set: the history leaves the empty map out
    recorded_headers = {name.lower() for name in steps[0].response_headers}
    assert "content-type" in recorded_headers and "date" not in recorded_headers  # transport headers left out
    assert steps[1].detail["next"] == method
    assert steps[2].request["body"] == expected_pay
    assert all(s.started_at and s.finished_at and s.started_at <= s.finished_at for s in steps)


# --- Failure classes ------------------------------------------------------------------------------


def one_call(url: str, path: str = "/a", **node_extra):
    return store({"a": task(req("POST", url + path), **node_extra)}, "a")


def test_5xx_is_retried_and_the_second_attempt_succeeds(service):
    service.script("POST", "/a", Reply(500, {"err": "boom"}))
    ex = run(one_call(service.url, retry=retry(3)))
    assert ex.status == "SUCCEEDED"
    assert history(ex) == [("a", "forward", 1, "failed"), ("a", "forward", 2, "succeeded")]
    first = ex.steps.get(attempt=1)
    assert first.response_status == 500 and first.response_body == {"err": "boom"}
    assert first.error["failure"] == "status"
    assert idempotency_keys(service.requests) == keys_for(ex, "a:1", "a:2")


def test_4xx_is_not_retried(service):
    service.default("POST", "/a", Reply(400, {"err": "bad input"}))
    ex = run(one_call(service.url, retry=retry(3), on_failure="fail"))
    assert ex.status == "FAILED"
    assert len(service.requests) == 1
    assert history(ex) == [("a", "forward", 1, "failed")]
    assert ex.error["node"] == "a" and "400" in ex.error["message"]


def test_dropped_connection_is_a_network_error_and_retried(service):
    service.script("POST", "/a", Reply(drop=True))
    ex = run(one_call(service.url, retry=retry(3)))
    assert ex.status == "SUCCEEDED"
    assert history(ex) == [("a", "forward", 1, "failed"), ("a", "forward", 2, "succeeded")]
    first = ex.steps.get(attempt=1)
    assert first.error["failure"] == "network" and first.response_status is None
    assert idempotency_keys(service.requests) == keys_for(ex, "a:1", "a:2")


def test_reply_slower_than_the_request_timeout_is_a_timeout_and_retried(service):
    service.script("POST", "/a", Reply(200, {"late": True}, delay_s=5.0))
    # timeout_s bounds the whole call: wide enough for the second, prompt answer on a loaded machine.
    definition = store({"a": task(req("POST", service.url + "/a", timeout_s=2.0), retry=retry(3))}, "a")
    ex = run(definition)
    assert ex.status == "SUCCEEDED"
    assert history(ex) == [("a", "forward", 1, "failed"), ("a", "forward", 2, "succeeded")]
    assert ex.steps.get(attempt=1).error["failure"] == "timeout"
    assert ex.output != {"late": True}


# --- Compensation ---------------------------------------------------------------------------------


def compensated_chain(url: str, comp_retry: dict | None = None):
    nodes = {}
    for i in (1, 2, 3):
        nodes[f"t{i}"] = task(
            req("POST", f"{url}/t{i}"),
            next=f"t{i + 1}",
            compensation=req("DELETE", f"{url}/t{i}/{{{{nodes.t{i}.response.body.id}}}}"),
            compensation_retry=comp_retry or retry(1),
        )
    nodes["t4"] = task(req("POST", f"{url}/t4"))
    return store(nodes, "t1", name="comp")


def script_ids(service):
    for i in (1, 2, 3):
        service.default("POST", f"/t{i}", Reply(200, {"id": f"id{i}"}))


def test_late_failure_compensates_succeeded_steps_in_reverse_order(service):
    script_ids(service)
    service.default("POST", "/t4", Reply(422, {"err": "no"}))
    ex = run(compensated_chain(service.url))
    assert ex.status == "COMPENSATED"
    assert ex.error["node"] == "t4"
    assert [(r.method, r.path) for r in service.requests] == [
        ("POST", "/t1"),
        ("POST", "/t2"),
        ("POST", "/t3"),
        ("POST", "/t4"),
        ("DELETE", "/t3/id3"),
        ("DELETE", "/t2/id2"),
        ("DELETE", "/t1/id1"),
    ]
    assert history(ex)[4:] == [
        ("t3", "compensation", 1, "succeeded"),
        ("t2", "compensation", 1, "succeeded"),
        ("t1", "compensation", 1, "succeeded"),
    ]
    keys = idempotency_keys(service.requests)
    assert len(set(keys)) == len(keys)  # a compensation never reuses its forward call's key
    assert all(k.startswith(f"{ex.pk}:") for k in keys)


def failed_compensation(service):
    """t1..t3 succeed, t4 fails, t3's compensation succeeds, t2's fails for good: FAILED."""
    script_ids(service)
    service.default("POST", "/t4", Reply(400))
    service.script("DELETE", "/t2/id2", Reply(500), Reply(503))
    ex = run(compensated_chain(service.url, comp_retry=retry(2)))
    assert ex.status == "FAILED"
    assert ex.error["phase"] == "compensation" and ex.error["node"] == "t2"
    assert history(ex)[4:] == [
        ("t3", "compensation", 1, "succeeded"),
        ("t2", "compensation", 1, "failed"),
        ("t2", "compensation", 2, "failed"),
    ]
    assert service.calls("DELETE", "/t1/id1") == []
    return ex


def test_compensation_failing_for_good_fails_then_retry_with_skip_finishes_compensated(service):
    ex = failed_compensation(service)
    ex = retry_execution(ex.pk, skip=True)
    assert ex.status == "COMPENSATING"
    ex = drive(ex)
    assert ex.status == "COMPENSATED"
    assert len(service.calls("DELETE", "/t2/id2")) == 2  # skipped, not called again
    assert len(service.calls("DELETE", "/t1/id1")) == 1
    assert history(ex)[-1] == ("t1", "compensation", 1, "succeeded")


def test_retry_without_skip_calls_the_failed_compensation_again(service):
    ex = failed_compensation(service)
    ex = drive(retry_execution(ex.pk))
    assert ex.status == "COMPENSATED"
    assert [r.path for r in service.calls("DELETE")] == ["/t3/id3", "/t2/id2", "/t2/id2", "/t2/id2", "/t1/id1"]
    assert history(ex)[-2:] == [("t2", "compensation", 3, "succeeded"), ("t1", "compensation", 1, "succeeded")]


# --- Templates and secrets ------------------------------------------------------------------------


def test_templates_read_earlier_responses_and_whole_references_keep_their_type(service):
    service.default("POST", "/a", Reply(200, {"id": 17, "tags": ["x", "y"], "meta": {"k": 1}, "ok": True}))
    b = req(
        "PUT",
        service.url + "/b/{{nodes.a.response.body.id}}",
        headers={"X-Order": "{{nodes.a.response.body.id}}"},
        query={"status": "{{nodes.a.response.status}}"},
        body={
            "id": "{{nodes.a.response.body.id}}",
            "tags": "{{nodes.a.response.body.tags}}",
            "meta": "{{nodes.a.response.body.meta}}",
            "ok": "{{nodes.a.response.body.ok}}",
            "label": "order-{{nodes.a.response.body.id}} {{nodes.a.response.body.tags}}",
            "first": "{{nodes.a.response.body.tags.0}}",
            "input": "{{payload}}",
        },
    )
    ex = run(store({"a": task(req("POST", service.url + "/a"), next="b"), "b": task(b)}, "a"), {"n": 1})
    assert ex.status == "SUCCEEDED"
    seen = service.calls("PUT")[0]
    assert seen.path == "/b/17"
    assert seen.header("X-Order") == "17"
    assert seen.query == {"status": "200"}
    assert seen.body == {
        "id": 17,
        "tags": ["x", "y"],
        "meta": {"k": 1},
        "ok": True,
        "label": 'order-17 ["x","y"]',
        "first": "x",
        "input": {"n": 1},
    }


def test_missing_template_path_fails_the_step_naming_the_path(service):
    nodes = chain(service.url, "a", "b", b={"retry": retry(3), "on_failure": "fail"})
    nodes["b"]["request"]["body"] = {"id": "{{nodes.a.response.body.nope}}"}
    ex = run(store(nodes, "a"))
    assert ex.status == "FAILED"
    assert [r.path for r in service.requests] == ["/a"]  # b never went out, and was not retried
    assert history(ex) == [("a", "forward", 1, "succeeded"), ("b", "forward", 1, "failed")]
    step = ex.steps.get(node_id="b")
    assert step.error["failure"] == "template"
    assert "nodes.a.response.body.nope" in step.error["message"]
    assert "nodes.a.response.body.nope" in ex.error["message"]


SECRET = "s3cr3t-Value-9f8e7d"


def test_secrets_reach_the_service_but_are_never_stored(service, monkeypatch):
    monkeypatch.setenv("TRAMA_SECRET_API_KEY", SECRET)
    request = req(
        "POST",
        service.url + "/a",
        headers={"Authorization": "Bearer {{secrets.API_KEY}}"},
        body={"key": "{{secrets.API_KEY}}", "order": "{{payload.id}}"},
    )
    ex = run(store({"a": task(request, next="b"), "b": task(req("POST", service.url + "/b"))}, "a"), {"id": 5})
    assert ex.status == "SUCCEEDED"

    seen = service.calls("POST", "/a")[0]
    assert seen.header("Authorization") == f"Bearer {SECRET}"
    assert seen.body == {"key": SECRET, "order": 5}

    step = ex.steps.get(node_id="a")
    assert step.request["headers"]["Authorization"] == "Bearer ***"
    assert step.request["body"] == {"key": "***", "order": 5}
    # the service echoed the body back: the stored response is scrubbed too
    assert step.response_body["echo"]["key"] == "***"

    rows = serializers.serialize("json", [Execution.objects.get(pk=ex.pk), *Step.objects.filter(execution=ex)])
    assert SECRET not in rows
    assert "s3cr3t" not in rows


def test_the_server_secret_key_is_not_a_template_secret(service, monkeypatch):
    monkeypatch.setenv("TRAMA_SECRET_KEY", "server-hmac-key-do-not-leak")
    assert "KEY" not in configured_secrets()
    request = req("POST", service.url + "/a", headers={"X-Stolen": "{{secrets.KEY}}"})
    ex = run(store({"a": task(request, on_failure="fail")}, "a"))
    assert all(r.header("X-Stolen") != "server-hmac-key-do-not-leak" for r in service.requests)
    assert ex.status == "FAILED"
    assert "secrets.KEY" in ex.steps.get(node_id="a").error["message"]


def test_response_body_over_the_cap_is_stored_truncated(service, settings):
    settings.TRAMA_RESPONSE_BODY_CAP = 32
    service.default("POST", "/a", Reply(200, "A" * 200))
    service.default("POST", "/b", Reply(200, {"small": 1}))
    ex = run(store(chain(service.url, "a", "b"), "a"))
    assert ex.status == "SUCCEEDED"
    big = ex.steps.get(node_id="a")
    assert big.response_body == {"truncated": True, "text": "A" * 32}
    assert ex.steps.get(node_id="b").response_body == {"small": 1}


# --- Sleep, cancel, wake, retry ---------------------------------------------------------------------


def sleeping(service, duration_s: float = 3600):
    nodes = {
        "a": task(req("POST", service.url + "/a"), next="nap", compensation=req("DELETE", service.url + "/a")),
        "nap": sleep(duration_s, next="b"),
        "b": task(req("POST", service.url + "/b")),
    }
    execution, _ = start_execution(store(nodes, "a"), {})
    ex = drive(execution, until={"SLEEPING"})
    assert ex.status == "SLEEPING"
    assert ex.due_at is not None and ex.lease_until is None
    assert history(ex) == [("a", "forward", 1, "succeeded"), ("nap", "forward", 1, "sleeping")]
    return ex


def test_cancel_while_sleeping_with_compensation(service):
    ex = sleeping(service)
    ex = cancel_execution(ex.pk, compensate=True)
    assert ex.status == "COMPENSATING"
    ex = drive(ex)
    assert ex.status == "CANCELLED"
    assert [(r.method, r.path) for r in service.requests] == [("POST", "/a"), ("DELETE", "/a")]
    assert history(ex) == [
        ("a", "forward", 1, "succeeded"),
        ("nap", "forward", 1, "cancelled"),
        ("a", "compensation", 1, "succeeded"),
    ]
    assert ex.due_at is None and ex.finished_at is not None


def test_cancel_while_sleeping_without_compensation(service):
    ex = sleeping(service)
    ex = cancel_execution(ex.pk, compensate=False)
    assert ex.status == "CANCELLED"
    assert ex.due_at is None
    assert [(r.method, r.path) for r in service.requests] == [("POST", "/a")]
    assert history(ex) == [("a", "forward", 1, "succeeded"), ("nap", "forward", 1, "cancelled")]
    with pytest.raises(TransitionRefused):
        cancel_execution(ex.pk)


def test_wake_ends_a_sleep_and_the_execution_goes_on(service):
    ex = sleeping(service, duration_s=3600)
    wake_execution(ex.pk)
    ex = drive(ex, timeout=5)
    assert ex.status == "SUCCEEDED"
    assert [r.path for r in service.requests] == ["/a", "/b"]
    assert history(ex)[1:] == [("nap", "forward", 1, "succeeded"), ("b", "forward", 1, "succeeded")]


def test_wake_of_an_execution_that_is_not_sleeping_is_refused(service):
    ex = run(store(chain(service.url, "a"), "a"))
    with pytest.raises(TransitionRefused):
        wake_execution(ex.pk)


def test_retry_of_a_failed_forward_step_resumes_from_that_node(service):
    service.script("POST", "/b", Reply(400, {"err": "not yet"}))
    ex = run(store(chain(service.url, "a", "b", "c", b={"on_failure": "fail"}), "a"))
    assert ex.status == "FAILED"
    assert ex.error["node"] == "b"
    ex = retry_execution(ex.pk)
    assert ex.status == "RUNNING" and ex.error is None and ex.finished_at is None
    ex = drive(ex)
    assert ex.status == "SUCCEEDED"
    assert [r.path for r in service.requests] == ["/a", "/b", "/b", "/c"]
    assert idempotency_keys(service.requests) == keys_for(ex, "a:1", "b:1", "b:2", "c:1")
    assert history(ex) == [
        ("a", "forward", 1, "succeeded"),
        ("b", "forward", 1, "failed"),
        ("b", "forward", 2, "succeeded"),
        ("c", "forward", 1, "succeeded"),
    ]


def test_retry_of_a_succeeded_execution_is_refused(service):
    ex = run(store(chain(service.url, "a"), "a"))
    with pytest.raises(TransitionRefused):
        retry_execution(ex.pk)


# --- Starting ---------------------------------------------------------------------------------------


def test_start_with_the_same_idempotency_key_and_body_returns_the_first_execution(service):
    definition = store(chain(service.url, "a"), "a")
    first, created = start_execution(definition, {"x": 1}, idempotency_key="order-1")
    again, created_again = start_execution(definition, {"x": 1}, idempotency_key="order-1")
    assert created and not created_again
    assert again.pk == first.pk
    with pytest.raises(IdempotencyConflict):
        start_execution(definition, {"x": 2}, idempotency_key="order-1")
    assert Execution.objects.count() == 1
    assert drive(first).status == "SUCCEEDED"
    assert len(service.requests) == 1


# --- Egress guard -----------------------------------------------------------------------------------


def test_loopback_call_is_refused_unless_allowed(service, settings):
    settings.TRAMA_EGRESS_ALLOW = []
    ex = run(one_call(service.url, retry=retry(3), on_failure="fail"))
    assert ex.status == "FAILED"
    assert service.requests == []
    assert history(ex) == [("a", "forward", 1, "failed")]
    error = ex.steps.get().error
    assert error["failure"] == "egress"
    assert "127.0.0.1" in error["message"] and "TRAMA_EGRESS_ALLOW" in error["message"]


@pytest.mark.parametrize("allow", [["127.0.0.1"], ["127.0.0.1", "169.254.169.254"], ["169.254.0.0/16"]])
def test_metadata_address_is_refused_even_when_allowed(service, settings, allow):
    settings.TRAMA_EGRESS_ALLOW = allow
    ex = run(one_call("http://169.254.169.254", path="/latest/meta-data/", retry=retry(3), on_failure="fail"))
    assert ex.status == "FAILED"
    error = ex.steps.get().error
    assert error["failure"] == "egress"
    assert "169.254.169.254" in error["message"]
    assert ex.error["failure"] == "egress" and "169.254.169.254" in ex.error["message"]
    assert ex.error["node"] == "a"
