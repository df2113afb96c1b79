"""The forward path of the pure state machine: tasks in order, switch, succeed."""

from __future__ import annotations

from datetime import timedelta

from executions.choices import Phase
from executions.machine import Call, Resume, decide, new_state
from tests.support.machine import SVC, T0, Run, comp
from tests.support.specs import chain, req, retry, task


def test_start_enters_the_start_node_and_emits_its_call():
    run = Run(chain(SVC, "a", "b"), "a")
    d = run.start()
    assert d.status == "RUNNING"
    assert d.state["node"] == "a" and d.state["attempt"] == 1
    assert isinstance(d.call, Call)
    assert (d.call.node, d.call.phase, d.call.attempt) == ("a", Phase.FORWARD, 1)
    assert d.call.request == run.spec["nodes"]["a"]["request"]
    assert d.due_at is None  # the runner owns the call
    assert d.state["open_seq"] == d.call.seq == 1


def test_decide_does_not_modify_the_input_state():
    run = Run(chain(SVC, "a"), "a")
    state = new_state()
    decide(run.env(), state, Resume())
    assert state == new_state()


def test_call_succeeded_moves_to_the_next_node_and_records_the_step():
    run = Run(chain(SVC, "a", "b"), "a")
    run.start()
    run.later(0.5)
    d = run.ok({"id": 7})
    assert d.status == "RUNNING"
    assert (d.call.node, d.call.attempt, d.call.seq) == ("b", 1, 2)
    (record,) = d.steps
    assert record.seq == 1 and record.new
    assert record.fields["node_id"] == "a"
    assert record.fields["node_type"] == "task"
    assert record.fields["phase"] == Phase.FORWARD
    assert record.fields["attempt"] == 1
    assert record.fields["status"] == "succeeded"
    assert record.fields["response_status"] == 200
    assert record.fields["started_at"] == T0.isoformat()
    assert record.fields["finished_at"] == (T0 + timedelta(seconds=0.5)).isoformat()
    assert d.state["results"]["a"]["response"]["body"] == {"id": 7}


def test_last_node_success_ends_succeeded_with_its_response_body_as_output():
    run = Run(chain(SVC, "a", "b"), "a")
    run.start()
    run.ok({"first": True})
    d = run.ok({"last": True})
    assert d.status == "SUCCEEDED"
    assert d.state["output"] == {"last": True}
    assert d.call is None and d.due_at is None
    assert run.steps() == [("a", Phase.FORWARD, 1, "succeeded"), ("b", Phase.FORWARD, 1, "succeeded")]


def test_succeed_node_renders_its_templated_output_keeping_json_types():
    nodes = chain(SVC, "a") | {
        "done": {
            "type": "succeed",
            "next": None,
            "output": {
                "order": "{{payload.order}}",
                "id": "{{nodes.a.response.body.id}}",
                "note": "id={{payload.order}}",
            },
        }
    }
    nodes["a"]["next"] = "done"
    run = Run(nodes, "a", payload={"order": 42})
    run.start()
    d = run.ok({"id": [1, 2]})
    assert d.status == "SUCCEEDED"
    assert d.state["output"] == {"order": 42, "id": [1, 2], "note": "id=42"}
    assert run.steps()[-1] == ("done", Phase.FORWARD, 1, "succeeded")


def switch_graph(cases: list, default: str = "card") -> dict:
    nodes = chain(SVC, "a") | {
        "route": {"type": "switch", "next": None, "cases": cases, "default": default},
        "pix": task(req("POST", "http://svc/pix")),
        "card": task(req("POST", "http://svc/card")),
        "boleto": task(req("POST", "http://svc/boleto")),
    }
    nodes["a"]["next"] = "route"
    nodes["a"]["compensation"] = comp("/a") | {"retry": retry(max_attempts=1)}
    return nodes


def test_switch_takes_the_first_truthy_case():
    cases = [
        {"when": {"==": [{"var": "payload.method"}, "nope"]}, "next": "boleto"},
        {"when": {"==": [{"var": "payload.method"}, "pix"]}, "next": "pix"},
        {"when": {"==": [{"var": "nodes.a.response.body.ok"}, True]}, "next": "boleto"},
    ]
    run = Run(switch_graph(cases), "a", payload={"method": "pix"})
    run.start()
    d = run.ok({"ok": True})
    assert d.call.node == "pix"
    switch_step = run.history[2]
    assert switch_step["node_id"] == "route" and switch_step["status"] == "succeeded"
    assert switch_step["detail"] == {"matched_case": 1, "next": "pix"}


def test_switch_without_a_truthy_case_takes_the_default():
    cases = [{"when": {"==": [{"var": "payload.method"}, "pix"]}, "next": "pix"}]
    run = Run(switch_graph(cases), "a", payload={"method": "card"})
    run.start()
    d = run.ok()
    assert d.call.node == "card"
    assert run.history[2]["detail"] == {"matched_case": None, "next": "card"}


def test_switch_rule_that_raises_fails_the_node_with_the_error_and_compensates():
    cases = [{"when": {"/": [1, 0]}, "next": "pix"}]
    run = Run(switch_graph(cases), "a", payload={"method": "pix"})
    run.start()
    d = run.ok({"id": 1})
    # never a silent false: the default branch is not taken, compensation starts
    assert d.status == "COMPENSATING"
    assert (d.call.node, d.call.phase) == ("a", Phase.COMPENSATION)
    assert d.call.request == run.spec["nodes"]["a"]["compensation"]
    route = run.history[2]
    assert route["node_id"] == "route" and route["status"] == "failed"
    assert "division" in route["error"]["message"]
    d = run.ok()
    assert d.status == "COMPENSATED"
    assert d.state["error"]["node"] == "route"
    assert "division" in d.state["error"]["message"]
