"""Unit tests of the pure state machine (executions/machine/): no database, no HTTP.

Each test builds a normalized spec, feeds events to ``decide`` with an explicit
clock, and checks the decision: status, actions, due time and the step records.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from executions.choices import Phase
from executions.machine import (
    AsyncAccepted,
    BranchFinished,
    Call,
    CallbackArrived,
    CallFailed,
    CallSucceeded,
    Cancel,
    Decision,
    Env,
    EventRejected,
    Fork,
    Heartbeat,
    Resume,
    Retry,
    SendAsync,
    Wake,
    backoff_seconds,
    decide,
    new_state,
)
from tests.engine_support import req, task

T0 = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
KEY = "11111111-2222-3333-4444-555555555555"


def retry(max_attempts=3, backoff_s=2.0, multiplier=2.0, max_backoff_s=60.0, retry_on=None) -> dict:
    return {
        "max_attempts": max_attempts,
        "backoff_s": backoff_s,
        "multiplier": multiplier,
        "max_backoff_s": max_backoff_s,
        "retry_on": ["network", "timeout", 408, 429, "5xx"] if retry_on is None else retry_on,
    }


def comp(path: str, **extra) -> dict:
    return req("DELETE", f"http://svc{path}") | extra


def async_node(request: dict, next=None, timeout_s=60.0, heartbeat_s=None, on_timeout="compensate", **extra) -> dict:
    node = task(request, next=next, **extra)
    return node | {
        "type": "async_task",
        "timeout_s": timeout_s,
        "heartbeat_s": heartbeat_s,
        "on_timeout": on_timeout,
        "callback": {"success_when": None, "failure_when": None},
    }


def response(body=None, status=200) -> dict:
    return {"status": status, "headers": {"Content-Type": "application/json"}, "body": body}


class Run:
    """One execution fed through ``decide``, with its own clock and a merged step history."""

    def __init__(self, nodes: dict, start: str, payload=None, key: str = KEY):
        self.spec = {"name": "t", "kind": "graph", "start": start, "nodes": nodes}
        self.payload = payload if payload is not None else {}
        self.key = key
        self.now = T0
        self.state = new_state()
        self.last: Decision | None = None
        self.history: dict[int, dict] = {}

    def env(self) -> Env:
        meta = {"id": self.key, "definition": "t", "version": 1, "started_at": T0.isoformat()}
        return Env(spec=self.spec, payload=self.payload, execution=meta, now=self.now, key=self.key)

    def send(self, event) -> Decision:
        decision = decide(self.env(), self.state, event)
        self.state, self.last = decision.state, decision
        for record in decision.steps:
            if record.new:
                assert record.seq not in self.history, f"step {record.seq} created twice"
                self.history[record.seq] = dict(record.fields)
            else:
                assert record.seq in self.history, f"step {record.seq} updated before it was created"
                self.history[record.seq].update(record.fields)
        return decision

    def later(self, seconds: float) -> Run:
        self.now += timedelta(seconds=seconds)
        return self

    @property
    def call(self):
        return self.last.call

    def start(self) -> Decision:
        return self.send(Resume())

    def ok(self, body=None, status=200) -> Decision:
        return self.send(CallSucceeded(self.call.seq, response(body, status), {"response_status": status}))

    def http_error(self, status: int, body=None) -> Decision:
        return self.send(CallFailed(self.call.seq, "status", f"HTTP {status}", response(body, status)))

    def broken(self, failure: str = "network") -> Decision:
        return self.send(CallFailed(self.call.seq, failure, f"{failure} went wrong"))

    def accepted(self, body=None) -> Decision:
        return self.send(AsyncAccepted(self.call.seq, response(body, 202), {"response_status": 202}))

    def steps(self) -> list[tuple]:
        return [(s["node_id"], s["phase"], s["attempt"], s["status"]) for _, s in sorted(self.history.items())]


# --- Forward path ----------------------------------------------------------------------------


def chain(*ids: str, **per_node) -> dict:
    nodes = {}
    for i, node_id in enumerate(ids):
        nxt = ids[i + 1] if i + 1 < len(ids) else None
        nodes[node_id] = task(req("POST", f"http://svc/{node_id}"), next=nxt, **per_node.get(node_id, {}))
    return nodes


def test_start_enters_the_start_node_and_emits_its_call():
    run = Run(chain("a", "b"), "a")
    d = run.start()
    assert d.status == "RUNNING"
    assert d.state["node"] == "a" and d.state["attempt"] == 1
    assert isinstance(d.call, Call)
    assert (d.call.node, d.call.phase, d.call.attempt) == ("a", Phase.FORWARD, 1)
    assert d.call.request == run.spec["nodes"]["a"]["request"]
    assert d.due_at is None  # the runner owns the call
    assert d.state["open_seq"] == d.call.seq == 1


def test_decide_does_not_modify_the_input_state():
    run = Run(chain("a"), "a")
    state = new_state()
    decide(run.env(), state, Resume())
    assert state == new_state()


def test_call_succeeded_moves_to_the_next_node_and_records_the_step():
    run = Run(chain("a", "b"), "a")
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
    run = Run(chain("a", "b"), "a")
    run.start()
    run.ok({"first": True})
    d = run.ok({"last": True})
    assert d.status == "SUCCEEDED"
    assert d.state["output"] == {"last": True}
    assert d.call is None and d.due_at is None
    assert run.steps() == [("a", Phase.FORWARD, 1, "succeeded"), ("b", Phase.FORWARD, 1, "succeeded")]


def test_succeed_node_renders_its_templated_output_keeping_json_types():
    nodes = chain("a") | {
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
    nodes = chain("a") | {
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


# --- Sleep -----------------------------------------------------------------------------------


def sleep_graph(duration_s: float = 30.0) -> dict:
    nodes = chain("a", "b")
    nodes["a"]["next"] = "nap"
    nodes["a"]["compensation"] = comp("/a") | {"retry": retry(max_attempts=1)}
    nodes["nap"] = {"type": "sleep", "duration_s": duration_s, "until": None, "next": "b"}
    return nodes


def sleeping_run() -> Run:
    run = Run(sleep_graph(30), "a")
    run.start()
    run.ok()
    return run


def test_sleep_with_duration_pauses_sleeping_until_due():
    run = sleeping_run()
    d = run.last
    assert d.status == "SLEEPING"
    assert d.call is None
    assert d.due_at == T0 + timedelta(seconds=30)
    nap = run.history[2]
    assert (nap["node_id"], nap["status"]) == ("nap", "sleeping")
    assert nap["detail"] == {"until": (T0 + timedelta(seconds=30)).isoformat()}


def test_resume_before_the_sleep_is_due_keeps_sleeping():
    run = sleeping_run()
    d = run.later(10).send(Resume())
    assert d.status == "SLEEPING"
    assert d.due_at == T0 + timedelta(seconds=30)
    assert d.actions == []


def test_resume_after_the_sleep_is_due_goes_on_to_the_next_node():
    run = sleeping_run()
    d = run.later(30).send(Resume())
    assert d.status == "RUNNING"
    assert d.call.node == "b"
    assert run.history[2]["status"] == "succeeded"
    assert run.history[2]["finished_at"] == (T0 + timedelta(seconds=30)).isoformat()


def test_wake_ends_a_sleep_early():
    run = sleeping_run()
    d = run.later(5).send(Wake())
    assert d.due_at == T0 + timedelta(seconds=5)
    d = run.send(Resume())
    assert d.call.node == "b"
    assert run.history[2]["status"] == "succeeded"


def test_wake_is_rejected_unless_sleeping():
    run = Run(chain("a"), "a")
    run.start()
    with pytest.raises(EventRejected):
        run.send(Wake())


# --- Retries ---------------------------------------------------------------------------------


def test_retryable_failure_with_attempts_left_backs_off_then_calls_attempt_two():
    policy = retry(max_attempts=3, backoff_s=2.0, multiplier=2.0)
    run = Run(chain("a", "b", b={"retry": policy}), "a")
    run.start()
    run.ok()
    d = run.http_error(503)
    assert d.status == "SLEEPING"
    assert d.call is None
    first_delay = (d.due_at - T0).total_seconds()
    assert 2.0 * 0.8 <= first_delay <= 2.0 * 1.2
    assert run.history[2]["status"] == "failed" and run.history[2]["attempt"] == 1
    assert run.history[2]["error"]["failure"] == "status"

    # a resume before the back-off is over does nothing
    assert run.later(first_delay / 2).send(Resume()).status == "SLEEPING"
    run.now = d.due_at
    d = run.send(Resume())
    assert d.status == "RUNNING"
    assert (d.call.node, d.call.attempt, d.call.seq) == ("b", 2, 3)

    d = run.broken("timeout")
    second_delay = (d.due_at - run.now).total_seconds()
    assert 4.0 * 0.8 <= second_delay <= 4.0 * 1.2
    run.now = d.due_at
    assert run.send(Resume()).call.attempt == 3
    d = run.ok({"done": 1})
    assert d.status == "SUCCEEDED"
    assert [s[2:] for s in run.steps()] == [(1, "succeeded"), (1, "failed"), (2, "failed"), (3, "succeeded")]


def test_non_retryable_4xx_fails_at_once_and_compensates():
    run = Run(chain("a", "b", a={"compensation": comp("/a") | {"retry": retry(1)}}, b={"retry": retry(5)}), "a")
    run.start()
    run.ok()
    d = run.http_error(400, {"why": "bad"})
    assert d.status == "COMPENSATING"
    assert (d.call.node, d.call.phase) == ("a", Phase.COMPENSATION)
    assert d.state["failure"]["node"] == "b" and d.state["failure"]["attempt"] == 1
    assert d.state["results"]["b"]["response"]["body"] == {"why": "bad"}


def test_retries_exhausted_fail_the_node():
    run = Run(chain("a", a={"retry": retry(2), "on_failure": "fail"}), "a")
    run.start()
    run.http_error(500)
    run.now = run.last.due_at
    run.send(Resume())
    d = run.http_error(500)
    assert d.status == "FAILED"
    assert d.state["error"]["attempt"] == 2
    assert run.steps() == [("a", Phase.FORWARD, 1, "failed"), ("a", Phase.FORWARD, 2, "failed")]


@pytest.mark.parametrize(
    ("retry_on", "failure", "status", "retried"),
    [
        (None, "network", None, True),
        (None, "timeout", None, True),
        (None, "status", 408, True),
        (None, "status", 429, True),
        (None, "status", 500, True),
        (None, "status", 503, True),
        (None, "status", 400, False),
        (None, "status", 404, False),
        (None, "status", 409, False),
        ([404], "status", 404, True),
        ([404], "status", 500, False),
        ([404], "network", None, False),
        (["4xx"], "status", 400, True),
        (["4xx"], "status", 422, True),
        (["4xx"], "status", 500, False),
        (["5xx"], "timeout", None, False),
        (["timeout"], "timeout", None, True),
        ([], "network", None, False),
        (["network", "timeout", "4xx", "5xx"], "template", None, False),
        (["network", "timeout", "4xx", "5xx"], "egress", None, False),
    ],
)
def test_retry_on_classes(retry_on, failure, status, retried):
    run = Run(chain("a", a={"retry": retry(3, retry_on=retry_on), "on_failure": "fail"}), "a")
    run.start()
    d = run.http_error(status) if status is not None else run.broken(failure)
    assert d.status == ("SLEEPING" if retried else "FAILED")


def test_backoff_grows_by_the_multiplier_with_bounded_jitter():
    policy = retry(backoff_s=1.0, multiplier=3.0, max_backoff_s=1000.0)
    for key in ("k1", "k2", "k3", "k4"):
        for attempt in range(1, 6):
            base = 1.0 * 3.0 ** (attempt - 1)
            assert base * 0.8 <= backoff_seconds(policy, attempt, key) <= base * 1.2


def test_backoff_jitter_is_deterministic_per_key_and_varies_across_keys():
    policy = retry(backoff_s=10.0)
    assert backoff_seconds(policy, 2, "x") == backoff_seconds(policy, 2, "x")
    values = {backoff_seconds(policy, 1, f"key-{i}") for i in range(20)}
    assert len(values) > 10
    assert min(values) >= 8.0 and max(values) <= 12.0


def test_backoff_base_is_capped_by_max_backoff():
    policy = retry(backoff_s=1.0, multiplier=2.0, max_backoff_s=5.0)
    for key in ("a", "b", "c"):
        for attempt in (4, 10, 30):
            assert backoff_seconds(policy, attempt, key) <= 5.0 * 1.2


def test_backoff_never_exceeds_max_backoff():
    policy = retry(backoff_s=1.0, multiplier=2.0, max_backoff_s=5.0)
    delays = [backoff_seconds(policy, 10, f"key-{i}") for i in range(50)]
    assert max(delays) <= 5.0


# --- Compensation and failure policies --------------------------------------------------------


def compensated_chain() -> dict:
    nodes = chain("a", "b", "c", "d", "e")
    for node_id in ("a", "c", "d"):
        nodes[node_id]["compensation"] = comp(f"/{node_id}") | {"retry": retry(2, backoff_s=1.0)}
    return nodes


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


def failed_compensation_run() -> Run:
    """a, c, d succeed; e fails; d's compensation succeeds; c's fails twice (max_attempts 2): FAILED."""
    run = Run(compensated_chain(), "a")
    run.start()
    for _ in "abcd":
        run.ok()
    run.http_error(400)
    run.ok()  # d compensated
    d = run.http_error(500)  # c compensation, attempt 1: back-off
    assert d.status == "SLEEPING" and d.state["phase"] == Phase.COMPENSATION
    run.now = d.due_at
    d = run.send(Resume())
    assert (d.status, d.call.node, d.call.phase, d.call.attempt) == ("COMPENSATING", "c", Phase.COMPENSATION, 2)
    run.http_error(500)
    return run


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
    nodes = chain("a", "b", b={"on_failure": "fail"})
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
    nodes = chain("a", "b", b={"on_failure": "handler"}) | {"handler": task(req("POST", "http://svc/handler"))}
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
    nodes = chain("a", a={"compensation": comp("/a") | {"retry": retry(1)}})
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


# --- Cancel ----------------------------------------------------------------------------------


@pytest.mark.parametrize("compensate", [True, False])
def test_cancel_of_a_pending_execution_ends_cancelled_without_calls(compensate):
    run = Run(chain("a"), "a")
    d = run.send(Cancel(compensate=compensate))
    if compensate:
        assert d.status == "COMPENSATING" and d.due_at == T0
        d = run.send(Resume())
    assert d.status == "CANCELLED"
    assert d.call is None
    assert run.history == {}


def test_cancel_while_sleeping_with_compensation_compensates_then_ends_cancelled():
    run = sleeping_run()
    d = run.later(1).send(Cancel(compensate=True))
    assert d.status == "COMPENSATING"
    assert d.due_at == run.now  # runnable now; the worker does the calls
    assert d.call is None
    assert run.history[2]["status"] == "cancelled"
    d = run.send(Resume())
    assert (d.call.node, d.call.phase) == ("a", Phase.COMPENSATION)
    d = run.ok()
    assert d.status == "CANCELLED"
    assert d.state["sleep"] is None


def test_cancel_while_sleeping_without_compensation_ends_cancelled_at_once():
    run = sleeping_run()
    d = run.send(Cancel(compensate=False))
    assert d.status == "CANCELLED"
    assert d.call is None and d.due_at is None
    assert run.history[2]["status"] == "cancelled"
    assert all(s[1] == Phase.FORWARD for s in run.steps())


def async_graph(**async_extra) -> dict:
    nodes = chain("a", "ship")
    nodes["a"]["next"] = "pix"
    nodes["a"]["compensation"] = comp("/a") | {"retry": retry(1)}
    nodes["pix"] = async_node(req("POST", "http://svc/pix", success_status=[202, 200]), next="ship", **async_extra)
    return nodes


def waiting_run(**async_extra) -> Run:
    run = Run(async_graph(**async_extra), "a")
    run.start()
    run.ok({"id": 1})
    run.accepted({"queued": True})
    return run


@pytest.mark.parametrize("compensate", [True, False])
def test_cancel_while_waiting(compensate):
    run = waiting_run()
    d = run.later(1).send(Cancel(compensate=compensate))
    assert run.history[2]["status"] == "cancelled"
    if compensate:
        assert d.status == "COMPENSATING"
        d = run.send(Resume())
        assert (d.call.node, d.call.phase) == ("a", Phase.COMPENSATION)
        d = run.ok()
    assert d.status == "CANCELLED"
    with pytest.raises(EventRejected):
        run.send(CallbackArrived("pix", 1, "succeeded", {}))


# --- Parallel join ----------------------------------------------------------------------------


def forked_run() -> Run:
    """a -> fork(b -> c | d) -> e, every task undoable; a has succeeded and the branches are running."""
    nodes = chain("a", "b", "c", "d", "e")
    for node_id in "abcde":
        nodes[node_id]["compensation"] = comp(f"/{node_id}") | {"retry": retry(1)}
    nodes["a"]["next"], nodes["c"]["next"], nodes["d"]["next"] = "fork", None, None
    nodes["fork"] = {"type": "parallel", "branches": ["b", "d"], "next": "e"}
    run = Run(nodes, "a")
    run.start()
    d = run.ok()
    assert d.status == "WAITING" and [a for a in d.actions if isinstance(a, Fork)] == [Fork("fork", ["b", "d"])]
    return run


def compensation_order(run: Run) -> list[str]:
    order, d = [], run.send(Resume())
    while d.status == "COMPENSATING":
        assert d.call.phase == Phase.COMPENSATION
        order.append(d.call.node)
        d = run.ok()
    return order


def test_a_failed_branch_compensates_the_steps_of_the_branches_that_succeeded_then_those_before_the_fork():
    run = forked_run()
    run.send(BranchFinished("b", "SUCCEEDED", {}, ["b", "c"]))
    d = run.send(BranchFinished("d", "COMPENSATED", {}, []))
    assert d.status == "COMPENSATING"
    assert compensation_order(run) == ["c", "b", "a"]
    assert run.last.status == "COMPENSATED"
    assert run.last.state["error"]["branch"] == "d"


def test_a_branch_that_failed_for_good_ends_the_parent_failed_after_compensating_the_rest():
    run = forked_run()
    run.send(BranchFinished("d", "FAILED", {}, []))
    run.send(BranchFinished("b", "SUCCEEDED", {}, ["b", "c"]))
    assert compensation_order(run) == ["c", "b", "a"]
    assert run.last.status == "FAILED"
    assert run.last.state["error"]["message"] == "branch 'd' ended FAILED"


def test_a_cancel_during_the_join_also_compensates_the_branches_that_succeeded():
    run = forked_run()
    run.send(BranchFinished("b", "SUCCEEDED", {}, ["b", "c"]))
    run.send(Cancel(compensate=True))
    assert run.send(Resume()).call is None  # the join holds every compensation until the branches end
    d = run.send(BranchFinished("d", "CANCELLED", {}, []))
    assert d.status == "COMPENSATING"
    assert compensation_order(run) == ["c", "b", "a"]
    assert run.last.status == "CANCELLED"


def test_a_failure_after_the_join_compensates_the_branches_steps_in_reverse():
    run = forked_run()
    run.send(BranchFinished("d", "SUCCEEDED", {}, ["d"]))
    run.send(BranchFinished("b", "SUCCEEDED", {}, ["b", "c"]))
    d = run.send(Resume())
    assert d.call.node == "e"
    d = run.http_error(400)
    assert d.status == "COMPENSATING"
    order = [d.call.node]
    while (d := run.ok()).status == "COMPENSATING":
        order.append(d.call.node)
    assert order == ["d", "c", "b", "a"]
    assert run.last.status == "COMPENSATED"


# --- Retry of a FAILED execution ----------------------------------------------------------------


def test_retry_of_a_failed_forward_node_calls_it_again_with_the_next_attempt():
    run = Run(chain("a", "b", "c", b={"on_failure": "fail"}), "a")
    run.start()
    run.ok()
    assert run.http_error(400).status == "FAILED"
    d = run.later(60).send(Retry())
    assert d.status == "RUNNING"
    assert d.due_at == run.now
    assert d.state["error"] is None
    d = run.send(Resume())
    assert (d.call.node, d.call.phase, d.call.attempt) == ("b", Phase.FORWARD, 2)
    run.ok()
    d = run.ok({"end": 1})
    assert d.status == "SUCCEEDED"
    assert [s[0] for s in run.steps()] == ["a", "b", "b", "c"]


def test_retry_of_a_failed_compensation_calls_it_again():
    run = failed_compensation_run()
    d = run.send(Retry())
    assert d.status == "COMPENSATING"
    d = run.send(Resume())
    assert (d.call.node, d.call.phase, d.call.attempt) == ("c", Phase.COMPENSATION, 3)
    d = run.ok()
    assert (d.call.node, d.call.phase, d.call.attempt) == ("a", Phase.COMPENSATION, 1)
    d = run.ok()
    assert d.status == "COMPENSATED"


def test_retry_with_skip_skips_the_failed_compensation():
    run = failed_compensation_run()
    d = run.send(Retry(skip=True))
    assert d.status == "COMPENSATING"
    d = run.send(Resume())
    assert (d.call.node, d.call.phase, d.call.attempt) == ("a", Phase.COMPENSATION, 1)
    d = run.ok()
    assert d.status == "COMPENSATED"
    assert [s[0] for s in run.steps() if s[1] == Phase.COMPENSATION] == ["d", "c", "c", "a"]


def test_retry_with_skip_is_rejected_for_a_failed_forward_node():
    run = Run(chain("a", a={"on_failure": "fail"}), "a")
    run.start()
    run.http_error(400)
    with pytest.raises(EventRejected):
        run.send(Retry(skip=True))


def test_retry_is_rejected_unless_failed():
    run = Run(chain("a"), "a")
    run.start()
    with pytest.raises(EventRejected):
        run.send(Retry())


def finished(status: str) -> Run:
    run = Run(chain("a", a={"on_failure": "fail"}), "a")
    run.start()
    if status == "SUCCEEDED":
        run.ok()
    elif status == "FAILED":
        run.http_error(400)
    elif status == "COMPENSATED":
        run.spec["nodes"]["a"]["on_failure"] = "compensate"
        run.http_error(400)
    elif status == "CANCELLED":
        run.send(Cancel(compensate=False))
    assert run.state["status"] == status
    return run


ALL_EVENTS = [
    Resume(),
    CallSucceeded(1, response()),
    CallFailed(1, "network", "x"),
    AsyncAccepted(1, response()),
    CallbackArrived("a", 1, "succeeded", {}),
    Heartbeat("a", 1),
    Cancel(compensate=True),
    Cancel(compensate=False),
    Wake(),
    Retry(),
    Retry(skip=True),
]


@pytest.mark.parametrize("status", ["SUCCEEDED", "COMPENSATED", "FAILED", "CANCELLED"])
@pytest.mark.parametrize("event", ALL_EVENTS, ids=lambda e: type(e).__name__)
def test_final_states_reject_every_event_but_retry_of_failed(status, event):
    run = finished(status)
    if status == "FAILED" and event == Retry():
        assert run.send(event).status == "RUNNING"
        return
    with pytest.raises(EventRejected):
        run.send(event)


# --- Async tasks ----------------------------------------------------------------------------------


def test_async_task_sends_and_waits_with_a_deadline():
    run = Run(async_graph(timeout_s=900), "a")
    run.start()
    d = run.ok({"id": 1})
    assert d.status == "WAITING"
    assert isinstance(d.call, SendAsync)
    assert (d.call.node, d.call.attempt) == ("pix", 1)
    assert d.call.deadline == T0 + timedelta(seconds=900)
    assert d.state["wait"]["deadline"] == (T0 + timedelta(seconds=900)).isoformat()
    assert d.state["wait"]["acked"] is False
    # the wait is in the history while it lasts
    assert run.history[2]["status"] == "waiting" and run.history[2]["node_type"] == "async_task"


def test_async_accepted_marks_the_wait_acknowledged_and_due_at_the_deadline():
    run = waiting_run(timeout_s=900)
    d = run.last
    assert d.status == "WAITING"
    assert d.state["wait"]["acked"] is True
    assert d.due_at == T0 + timedelta(seconds=900)
    assert run.history[2]["status"] == "waiting"
    assert run.history[2]["response_status"] == 202


def test_callback_succeeded_continues_with_the_callback_body_available():
    run = waiting_run()
    d = run.later(3).send(CallbackArrived("pix", 1, "succeeded", {"paid": True}))
    assert d.status == "RUNNING"
    assert d.due_at == run.now  # the worker takes it from here
    assert run.history[2]["status"] == "succeeded"
    assert run.history[2]["detail"]["callback"] == {"paid": True}
    assert d.state["results"]["pix"]["callback"]["body"] == {"paid": True}
    d = run.send(Resume())
    assert d.call.node == "ship"


def test_callback_on_the_last_node_ends_succeeded_with_the_callback_body_as_output():
    nodes = async_graph()
    nodes["pix"]["next"] = None
    run = Run(nodes, "a")
    run.start()
    run.ok()
    run.accepted()
    d = run.send(CallbackArrived("pix", 1, "succeeded", {"paid": True}))
    assert d.status == "SUCCEEDED"
    assert d.state["output"] == {"paid": True}


def test_callback_failed_fails_the_node_and_compensates():
    run = waiting_run()
    d = run.send(CallbackArrived("pix", 1, "failed", {"reason": "declined"}))
    assert run.history[2]["status"] == "failed"
    assert d.status == "COMPENSATING"
    d = run.send(Resume())
    assert (d.call.node, d.call.phase) == ("a", Phase.COMPENSATION)
    d = run.ok()
    assert d.status == "COMPENSATED"
    assert d.state["error"]["node"] == "pix"


@pytest.mark.parametrize(
    ("reported", "message"),
    [
        ("card declined", "callback reported failure: card declined"),
        ({"code": 51, "message": "insufficient funds"}, "callback reported failure: insufficient funds"),
        ({"code": 51}, 'callback reported failure: {"code": 51}'),
        ("x" * 600, "callback reported failure: " + "x" * 497 + "..."),
    ],
    ids=["text", "object-with-message", "object", "long"],
)
def test_a_failed_callbacks_error_is_kept_in_the_step_and_the_execution_error(reported, message):
    run = waiting_run()
    run.send(CallbackArrived("pix", 1, "failed", {"status": "failed", "error": reported}))
    assert run.history[2]["error"] == {"message": message, "error": reported}
    run.send(Resume())
    d = run.ok()
    assert d.status == "COMPENSATED"
    assert d.state["error"] == {"node": "pix", "attempt": 1, "failure": "callback", "message": message,
                                "error": reported}  # fmt: skip


def test_callback_failed_with_attempts_left_backs_off_and_sends_again():
    run = waiting_run(retry=retry(2))
    d = run.send(CallbackArrived("pix", 1, "failed", {"reason": "declined"}))
    assert d.status == "SLEEPING"
    run.now = d.due_at
    d = run.send(Resume())
    assert isinstance(d.call, SendAsync)
    assert (d.call.node, d.call.attempt) == ("pix", 2)


def test_callback_arriving_before_the_acknowledgement_is_not_lost():
    run = Run(async_graph(), "a")
    run.start()
    sent = run.ok().call
    d = run.send(CallbackArrived("pix", 1, "succeeded", {"fast": True}))
    assert d.status == "RUNNING"
    # the late answer to the request no longer applies
    with pytest.raises(EventRejected):
        run.send(AsyncAccepted(sent.seq, response(None, 202)))
    assert run.send(Resume()).call.node == "ship"


@pytest.mark.parametrize(("node", "attempt"), [("pix", 2), ("pix", 0), ("a", 1), ("ship", 1)])
def test_callback_for_another_node_or_attempt_is_rejected(node, attempt):
    run = waiting_run()
    with pytest.raises(EventRejected):
        run.send(CallbackArrived(node, attempt, "succeeded", {}))
    with pytest.raises(EventRejected):
        run.send(Heartbeat(node, attempt))
    assert run.state["status"] == "WAITING"


def test_heartbeat_pushes_the_deadline_out_by_heartbeat_s():
    run = waiting_run(timeout_s=60, heartbeat_s=100)
    d = run.later(50).send(Heartbeat("pix", 1))
    assert d.status == "WAITING"
    assert d.due_at == T0 + timedelta(seconds=150)
    assert d.state["wait"]["deadline"] == (T0 + timedelta(seconds=150)).isoformat()
    # the old deadline passed: still waiting
    assert run.later(20).send(Resume()).status == "WAITING"


def test_heartbeat_never_shortens_the_deadline():
    run = waiting_run(timeout_s=600, heartbeat_s=10)
    d = run.later(1).send(Heartbeat("pix", 1))
    assert d.due_at == T0 + timedelta(seconds=600)


def test_wait_past_its_deadline_times_out_and_compensates():
    run = waiting_run(timeout_s=60)
    assert run.later(59).send(Resume()).status == "WAITING"
    d = run.later(1).send(Resume())
    assert run.history[2]["status"] == "timed_out"
    assert d.status == "COMPENSATING"
    assert (d.call.node, d.call.phase) == ("a", Phase.COMPENSATION)
    assert d.state["failure"]["failure"] == "timeout"
    with pytest.raises(EventRejected):
        run.send(CallbackArrived("pix", 1, "succeeded", {}))


def test_wait_timeout_with_on_timeout_fail_ends_failed():
    run = waiting_run(timeout_s=60, on_timeout="fail")
    d = run.later(61).send(Resume())
    assert d.status == "FAILED"
    assert d.call is None
    assert d.state["error"]["failure"] == "timeout"


def test_wait_timeout_with_on_timeout_node_branches_there():
    nodes = async_graph(timeout_s=60, on_timeout="late")
    nodes["late"] = task(req("POST", "http://svc/late"))
    run = Run(nodes, "a")
    run.start()
    run.ok()
    run.accepted()
    d = run.later(60).send(Resume())
    assert d.status == "RUNNING"
    assert d.call.node == "late"


def test_unacknowledged_wait_is_sent_again_after_resend_at_with_the_same_attempt():
    run = Run(async_graph(timeout_s=3600), "a")
    run.start()
    first = run.ok().call
    resend_at = datetime.fromisoformat(run.state["wait"]["resend_at"])
    assert resend_at > T0
    # before resend_at: keep waiting for the sender's answer
    run.now = resend_at - timedelta(seconds=1)
    d = run.send(Resume())
    assert d.status == "WAITING" and d.call is None and d.due_at == resend_at
    run.now = resend_at
    d = run.send(Resume())
    assert isinstance(d.call, SendAsync)
    assert (d.call.node, d.call.attempt, d.call.seq) == ("pix", first.attempt, first.seq)
    assert d.call.deadline == first.deadline
    assert d.steps == []  # same step, not a new one
    assert run.accepted().state["wait"]["acked"] is True


def test_unacknowledged_wait_past_its_deadline_times_out_instead_of_sending_again():
    run = Run(async_graph(timeout_s=5), "a")
    run.start()
    run.ok()
    d = run.send(Resume())
    assert d.due_at <= T0 + timedelta(seconds=5)
    d = run.later(60).send(Resume())
    assert not isinstance(d.call, SendAsync)
    assert run.history[2]["status"] == "timed_out"


# --- Abandoned waits ------------------------------------------------------------------------------


def _accepted_pix_with_compensation(**extra) -> Run:
    run = Run(async_graph(**extra), "a")
    run.spec["nodes"]["pix"]["compensation"] = comp("/pix") | {"retry": retry(1)}
    run.start()
    run.ok({"id": 1})
    run.accepted({"queued": True})
    return run


def test_cancel_of_an_accepted_wait_compensates_that_node_first():
    run = _accepted_pix_with_compensation()
    run.later(1).send(Cancel(compensate=True))
    d = run.send(Resume())
    assert (d.call.node, d.call.phase) == ("pix", Phase.COMPENSATION)
    d = run.ok()
    assert (d.call.node, d.call.phase) == ("a", Phase.COMPENSATION)
    assert run.ok().status == "CANCELLED"


def test_timeout_of_an_accepted_wait_compensates_that_node_first():
    run = _accepted_pix_with_compensation(timeout_s=5)
    d = run.later(6).send(Resume())
    assert (d.call.node, d.call.phase) == ("pix", Phase.COMPENSATION)
    d = run.ok()
    assert (d.call.node, d.call.phase) == ("a", Phase.COMPENSATION)
    assert run.ok().status == "COMPENSATED"


# --- Notify --------------------------------------------------------------------------------------


def _notifying(**notify) -> Run:
    run = Run(
        chain("a", "b", b={"on_failure": "compensate"}, a={"compensation": comp("/a") | {"retry": retry(1)}}), "a"
    )
    run.spec["notify"] = {k: req("POST", f"http://hooks/{k}") | {"retry": retry(2, backoff_s=1)} for k in notify}
    return run


def test_success_sends_the_succeeded_notification_before_ending():
    run = _notifying(succeeded=True, failed=True)
    run.start()
    run.ok({"id": 1})
    d = run.ok({"done": True})
    assert d.status == "RUNNING"  # not final until the notification is settled
    assert (d.call.node, d.call.phase, d.call.request["url"]) == (
        "notify.succeeded",
        "notify",
        "http://hooks/succeeded",
    )
    d = run.ok()
    assert d.status == "SUCCEEDED"
    assert d.state["output"] == {"done": True}
    assert run.steps()[-1] == ("notify.succeeded", "notify", 1, "succeeded")


def test_compensated_execution_sends_the_failed_notification_with_retries():
    run = _notifying(failed=True)
    run.start()
    run.ok({"id": 1})
    run.http_error(400)  # b fails for good: compensate a
    assert run.ok().call.node == "notify.failed"
    d = run.http_error(503)
    assert d.status == "SLEEPING"  # back-off before the second attempt
    d = run.later(5).send(Resume())
    assert (d.call.node, d.call.attempt) == ("notify.failed", 2)
    d = run.http_error(503)  # retries exhausted: the outcome stands anyway
    assert d.status == "COMPENSATED"
    assert d.state["error"]["node"] == "b"
    assert [s for s in run.steps() if s[1] == "notify"] == [
        ("notify.failed", "notify", 1, "failed"),
        ("notify.failed", "notify", 2, "failed"),
    ]


def test_no_notification_for_an_outcome_without_a_request():
    run = _notifying(failed=True)
    run.start()
    run.ok()
    assert run.ok().status == "SUCCEEDED"
