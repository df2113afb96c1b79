"""Drive the pure state machine (executions/machine/) in tests: no database, no HTTP.

A ``Run`` is one execution fed through ``decide`` with an explicit clock; the
tests in tests/machine/ check each decision: status, actions, due time and the
step records. The scenario builders here are shared by several of them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from executions.choices import Phase
from executions.machine import (
    AsyncAccepted,
    CallFailed,
    CallSucceeded,
    Decision,
    Env,
    Resume,
    decide,
    new_state,
)
from tests.support.specs import chain, req, retry, task

T0 = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
KEY = "11111111-2222-3333-4444-555555555555"
SVC = "http://svc"  # every task of chain(SVC, ...) POSTs to http://svc/<node id>


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


def sleep_graph(duration_s: float = 30.0) -> dict:
    nodes = chain(SVC, "a", "b")
    nodes["a"]["next"] = "nap"
    nodes["a"]["compensation"] = comp("/a") | {"retry": retry(max_attempts=1)}
    nodes["nap"] = {"type": "sleep", "duration_s": duration_s, "until": None, "next": "b"}
    return nodes


def sleeping_run() -> Run:
    run = Run(sleep_graph(30), "a")
    run.start()
    run.ok()
    return run


def compensated_chain() -> dict:
    nodes = chain(SVC, "a", "b", "c", "d", "e")
    for node_id in ("a", "c", "d"):
        nodes[node_id]["compensation"] = comp(f"/{node_id}") | {"retry": retry(2, backoff_s=1.0, max_backoff_s=60.0)}
    return nodes


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


def async_graph(**async_extra) -> dict:
    nodes = chain(SVC, "a", "ship")
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
