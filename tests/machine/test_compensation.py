"""Compensation and the on_failure policies in the pure state machine."""

from __future__ import annotations

from executions.choices import Phase
from tests.support.machine import SVC, Run, comp, compensated_chain, failed_compensation_run
from tests.support.specs import chain, req, retry, task


def test_compensation_runs_in_reverse_order_of_succeeded_steps_that_have_one():
    run = Run(compensated_chain(), "a")
    run.start()
    for _ in "abcd":
        run.ok()
    d = run.http_error(400)
    assert d.status == "COMPENSATING"
    order = []
    while d.status == "COMPENSATING":
        assert d.call.phase == Phase.COMPENSATION and d.call.attempt == 1
        assert d.call.request["url"] == f"http://svc/{d.call.node}"
        order.append(d.call.node)
        d = run.ok()
    assert order == ["d", "c", "a"]
    assert d.status == "COMPENSATED"
    assert d.state["error"]["node"] == "e"
    assert [s for s in run.steps() if s[1] == Phase.COMPENSATION] == [
        ("d", Phase.COMPENSATION, 1, "succeeded"),
        ("c", Phase.COMPENSATION, 1, "succeeded"),
        ("a", Phase.COMPENSATION, 1, "succeeded"),
    ]


def test_compensation_failing_for_good_ends_failed_with_phase_compensation():
    run = failed_compensation_run()
    d = run.last
    assert d.status == "FAILED"
    assert d.call is None and d.due_at is None
    assert d.state["error"]["phase"] == Phase.COMPENSATION
    assert d.state["error"]["node"] == "c"
    assert d.state["error"]["attempt"] == 2
    assert [s for s in run.steps() if s[1] == Phase.COMPENSATION] == [
        ("d", Phase.COMPENSATION, 1, "succeeded"),
        ("c", Phase.COMPENSATION, 1, "failed"),
        ("c", Phase.COMPENSATION, 2, "failed"),
    ]


def test_on_failure_fail_stops_without_compensating():
    nodes = chain(SVC, "a", "b", b={"on_failure": "fail"})
    nodes["a"]["compensation"] = comp("/a") | {"retry": retry(1)}
    run = Run(nodes, "a")
    run.start()
    run.ok()
    d = run.http_error(400)
    assert d.status == "FAILED"
    assert d.call is None
    assert d.state["error"]["node"] == "b"
    assert all(s[1] == Phase.FORWARD for s in run.steps())


def test_on_failure_node_id_branches_there():
    nodes = chain(SVC, "a", "b", b={"on_failure": "handler"}) | {"handler": task(req("POST", "http://svc/handler"))}
    run = Run(nodes, "a")
    run.start()
    run.ok()
    d = run.http_error(400, {"why": "nope"})
    assert d.status == "RUNNING"
    assert (d.call.node, d.call.phase, d.call.attempt) == ("handler", Phase.FORWARD, 1)
    assert d.state["results"]["b"]["error"]["node"] == "b"
    assert d.state["results"]["b"]["response"]["body"] == {"why": "nope"}
    d = run.ok({"handled": True})
    assert d.status == "SUCCEEDED"
    assert d.state["output"] == {"handled": True}


def test_fail_node_records_its_error_and_starts_compensation():
    nodes = chain(SVC, "a", a={"compensation": comp("/a") | {"retry": retry(1)}})
    nodes["a"]["next"] = "stop"
    nodes["stop"] = {
        "type": "fail",
        "next": None,
        "error": {"code": "{{payload.code}}", "id": "{{nodes.a.response.body.id}}"},
    }
    run = Run(nodes, "a", payload={"code": "OUT_OF_STOCK"})
    run.start()
    d = run.ok({"id": 9})
    assert d.status == "COMPENSATING"
    assert (d.call.node, d.call.phase) == ("a", Phase.COMPENSATION)
    stop = run.history[2]
    assert (stop["node_id"], stop["status"]) == ("stop", "failed")
    assert stop["error"] == {"code": "OUT_OF_STOCK", "id": 9}
    d = run.ok()
    assert d.status == "COMPENSATED"
    assert d.state["error"]["error"] == {"code": "OUT_OF_STOCK", "id": 9}
