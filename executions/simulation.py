"""Dry runs: the real state machine against mocked responses and a simulated clock.

:func:`simulate` drives ``executions.machine.decide`` the way a worker does
(executions/services/ ``_Run``), except that every ``Call`` / ``SendAsync``
is answered from the caller's mocks instead of the network, and the clock jumps
to each ``due_at`` at once (sleeps, back-offs and callback deadlines cost no
time). Calls are rendered and their answers turned into events by the worker's
own code (executions/perform.py) with a mock transport, and secrets masked
(``***``). No ORM, no HTTP: nothing is sent and nothing is stored.

Mocks, per node id (docs/definitions.md, "Simulating a run")::

    {"status": 200, "body": {...}, "headers": {...},
     "fail_times": N, "fail_status": 500,      # the first N calls answer fail_status
     "timeout": true,                            # task: every call times out; async: no callback comes
     "callback": {...},                          # async: the callback body (default {"status": "succeeded"})
     "compensation": {...same shape, for the node's compensation call...}}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from definitions import templating
from definitions.templating import references
from executions import machine
from executions.callback_tokens import callback_context
from executions.callbacks.services import callback_outcome, status_problem
from executions.dispatch import Outcome
from executions.perform import AnyCall, Rendered, perform, perform_call, render_call

DEFAULT_MAX_STEPS = 1000
MAX_STEPS_LIMIT = 10_000
MOCK_FIELDS = {"status", "body", "headers", "fail_times", "fail_status", "timeout", "callback", "compensation"}
COMPENSATION_MOCK_FIELDS = MOCK_FIELDS - {"callback", "compensation"}
CALL_TYPES = ("task", "async_task")
SIMULATED_TOKEN = "simulated"
DEFAULT_FAIL_STATUS = 500


class _Unsupported(Exception):
    """The machine asked for something a dry run cannot answer (e.g. starting parallel branches)."""


class SimulationTooLarge(Exception):
    """The answer would grow past TRAMA_SIMULATION_MAX_BYTES; the message says after how many steps."""


@dataclass
class SimulationResult:
    """The answer of ``POST definitions/simulate/``: final status, output, error, path, steps, calls."""

    status: str
    output: Any = None
    error: Any = None
    path: list[str] = field(default_factory=list)
    steps: list[dict] = field(default_factory=list)
    calls: int = 0

    def as_dict(self) -> dict:
        keys = ("status", "output", "error", "path", "steps", "calls")
        return {key: getattr(self, key) for key in keys}


# --- Default answers ----------------------------------------------------------------------
# A node without a mocked body answers what the rest of the definition reads from it: each
# `nodes.<id>.response.body.<path>` (or `.callback.body.<path>`) that a template or a rule names
# gets the placeholder "<id>.<path>", under an echo of the request's body. With empty bodies, every
# template that reads a response would fail the run at its first reference.


def default_bodies(spec: dict) -> dict[tuple[str, str], dict]:
    """(node id, "response" | "callback") -> the body parts the definition reads from that node."""
    bodies: dict[tuple[str, str], dict] = {}
    for path in _paths_read(spec):
        parts = path.split(".")
        if len(parts) < 5 or parts[0] != "nodes" or parts[2] not in ("response", "callback") or parts[3] != "body":
            continue
        _put(bodies.setdefault((parts[1], parts[2]), {}), parts[4:], f"{parts[1]}.{'.'.join(parts[4:])}")
    return bodies


def _paths_read(spec: dict) -> list[str]:
    """Every path the definition reads: template references, and JSON Logic ``var`` names."""
    found = references(spec.get("nodes")) + references(spec.get("notify"))
    stack: list[Any] = [spec.get("nodes")]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            var = value.get("var")
            name = var[0] if isinstance(var, list) and var else var
            if isinstance(name, str):
                found.append(name)
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return found


def _put(body: dict, keys: list[str], value: str) -> None:
    """body[k1][k2]… = value, making dicts on the way (templates read "0" from a dict key as well as a list)."""
    for key in keys[:-1]:
        if not isinstance(body.get(key), dict):
            body[key] = {}
        body = body[key]
    body.setdefault(keys[-1], value)


def _merged(base: dict, over: Any) -> Any:
    """``over`` on top of ``base``, dicts merged key by key."""
    if not isinstance(over, dict):
        return over if over is not None else base
    merged = dict(base)
    for key, value in over.items():
        merged[key] = _merged(base[key], value) if isinstance(base.get(key), dict) else value
    return merged


# --- Checking the mocks ------------------------------------------------------------------


def mock_problems(spec: dict, mocks: Any) -> list[dict]:
    """Every problem with ``mocks`` as ``{"path", "message"}`` (paths start at ``mocks``)."""
    if not isinstance(mocks, dict):
        return [{"path": "mocks", "message": "mocks must be an object: node id -> mock"}]
    problems: list[dict] = []
    for node_id, mock in mocks.items():
        path = f"mocks.{node_id}"
        node = spec["nodes"].get(node_id)
        if node is None:
            problems.append({"path": path, "message": f"unknown node '{node_id}': the definition has no such node"})
        elif node["type"] not in CALL_TYPES:
            problems.append({"path": path, "message": f"node '{node_id}' is a {node['type']} node: it makes no call"})
        else:
            problems += _one_mock_problems(mock, path, node, MOCK_FIELDS, templating.is_original(spec.get("dialect")))
    return problems


def _one_mock_problems(mock: Any, path: str, node: dict, allowed: set[str], original: bool = False) -> list[dict]:
    if not isinstance(mock, dict):
        return [{"path": path, "message": "a mock must be an object"}]
    problems = [{"path": f"{path}.{key}", "message": f"unknown field '{key}'"} for key in mock if key not in allowed]
    for key in ("status", "fail_status"):
        if key in mock and not _is_int(mock[key], 100, 599):
            problems.append({"path": f"{path}.{key}", "message": f"{key} must be an HTTP status code (100-599)"})
    if "fail_times" in mock and not _is_int(mock["fail_times"], 0, 1000):
        problems.append({"path": f"{path}.fail_times", "message": "fail_times must be an integer from 0 to 1000"})
    if "timeout" in mock and not isinstance(mock["timeout"], bool):
        problems.append({"path": f"{path}.timeout", "message": "timeout must be true or false"})
    if "headers" in mock and not isinstance(mock["headers"], dict):
        problems.append({"path": f"{path}.headers", "message": "headers must be an object"})
    problems += _body_problems(mock, path)
    problems += _callback_problems(mock, path, node, original)
    if "compensation" in mock:
        if not node.get("compensation"):
            problems.append({"path": f"{path}.compensation", "message": "the node has no compensation"})
        else:
            problems += _one_mock_problems(mock["compensation"], f"{path}.compensation", node, COMPENSATION_MOCK_FIELDS)
    return problems


def _body_problems(mock: dict, path: str) -> list[dict]:
    """A mocked body counts against TRAMA_RESPONSE_BODY_CAP like a real one: a dry run must not answer
    with bodies no real response could leave in the history (each step repeats its body)."""
    if "body" not in mock:
        return []
    cap, size = settings.TRAMA_RESPONSE_BODY_CAP, json_bytes(mock["body"])
    if size <= cap:
        return []
    message = f"the body is {size} bytes as JSON, over TRAMA_RESPONSE_BODY_CAP ({cap})"
    return [{"path": f"{path}.body", "message": message}]


def json_bytes(value: Any) -> int:
    """Size of ``value`` as compact UTF-8 JSON (times and other non-JSON values as their text)."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode())


def _callback_problems(mock: dict, path: str, node: dict, original: bool) -> list[dict]:
    """A callback body the receiver would refuse (``original``: the original's format, which takes any body)."""
    if "callback" not in mock:
        return []
    where, body = f"{path}.callback", mock["callback"]
    if node["type"] != "async_task":
        return [{"path": where, "message": "only async_task nodes receive callbacks"}]
    if not isinstance(body, dict):
        return [{"path": where, "message": "callback must be an object (the callback body)"}]
    if original:
        return []
    if body.get("status") == "running":
        return [{"path": where, "message": "a heartbeat ({'status': 'running'}) is not an outcome"}]
    problem = status_problem(node, body)
    return [{"path": f"{where}.status", "message": problem}] if problem else []


def _is_int(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


# --- The run ----------------------------------------------------------------------------------


def simulate(
    spec: dict,
    payload: Any,
    mocks: dict | None = None,
    max_steps: int = DEFAULT_MAX_STEPS,
    definition: tuple[str, int] | None = None,
    now: datetime | None = None,
) -> SimulationResult:
    """Run ``spec`` (normalized, valid) on ``payload`` against ``mocks`` (checked by :func:`mock_problems`).

    ``definition`` is the (name, version) templates see as ``execution.definition``
    / ``execution.version`` (version 0 for an unstored definition). Stops after
    ``max_steps`` history steps, reporting the status reached then. Raises
    :class:`SimulationTooLarge` once the steps would hold more than TRAMA_SIMULATION_MAX_BYTES.
    """
    return _Simulation(spec, payload, mocks or {}, max_steps, definition, now or timezone.now()).run()


class _Simulation:
    """One dry run: the machine's state, the simulated clock, the history built from StepRecords.

    A parallel node's branches run as simulations of their own (``branch`` set, started from
    ``machine.branch_state``), one after the other on the simulated clock, each from the fork's
    instant; their ends are reported to this one as the worker reports a branch execution's end.
    """

    def __init__(self, spec, payload, mocks, max_steps, definition, now, state=None, branch=""):
        name, version = definition or (spec["name"], 0)
        self.definition, self.branch, self.initial = definition, branch, state
        self.branch_steps: dict[int, list[dict]] = {}  # the parent's step seq at the fork -> its branches' steps
        self.spec, self.payload, self.mocks, self.max_steps = spec, payload, mocks, max_steps
        self.meta = {"id": "simulation", "definition": name, "version": version, "started_at": now.isoformat()}
        self.clock = now
        self.steps: dict[int, dict] = {}
        self.recorded_bytes = 0  # what the steps hold so far, as JSON: bounds the answer while it is built
        self.calls = 0
        self.sent: dict[tuple[str, str], int] = {}  # (node, phase) -> calls answered so far
        self.state: dict = machine.new_state()
        self.decision: machine.Decision | None = None
        self.defaults = default_bodies(spec)

    def env(self) -> machine.Env:
        return machine.Env(spec=self.spec, payload=self.payload, execution=self.meta, now=self.clock, key="simulation")

    def run(self) -> SimulationResult:
        self.state = machine.copy_json(self.initial) if self.initial else machine.new_state()
        event: machine.Event = machine.Resume()
        # Each round records at least one step or moves the clock; the bound only guards against a stall.
        try:
            for _ in range(4 * self.max_steps + 10):
                self._apply(event)
                if self.state["status"] in machine.FINAL_STATUSES or len(self.steps) >= self.max_steps:
                    break
                event = self._next_event(self.decision)
        except _Unsupported as exc:
            return self._result(self.state, stopped=str(exc))
        return self._result(self.state)

    def _apply(self, event: machine.Event) -> None:
        self.decision = machine.decide(self.env(), self.state, event)
        self._record(self.decision.steps)
        self.state = self.decision.state

    def _next_event(self, decision: machine.Decision) -> machine.Event:
        fork = next((action for action in decision.actions if isinstance(action, machine.Fork)), None)
        if fork is not None:
            return self._run_branches(decision, fork)
        known = (machine.Call, machine.SendAsync, machine.StepRecord)
        other = [type(action).__name__ for action in decision.actions if not isinstance(action, known)]
        if other:
            raise _Unsupported(f"the simulation cannot run {', '.join(other)} actions yet")
        call = decision.call
        if isinstance(call, machine.Call):
            return self._answer_call(decision.state, call)
        if isinstance(call, machine.SendAsync):
            return self._answer_async(decision, call)
        if decision.due_at is not None and decision.due_at > self.clock:
            self.clock = decision.due_at  # a sleep, back-off or deadline: no waiting in a dry run
        return machine.Resume()

    def _run_branches(self, decision: machine.Decision, fork: machine.Fork) -> machine.Event:
        """Run each branch to its end and report it; a branch failing cancels the ones not yet run
        (they report CANCELLED, having done nothing). Then go on from the join's decision."""
        at_fork, start, end = max(self.steps), self.clock, self.clock
        cancelled = False
        for head in fork.branches:
            if cancelled:
                self._apply(machine.BranchFinished(head, machine.ExecutionStatus.CANCELLED, {}, []))
                continue
            branch = _Simulation(
                self.spec, self.payload, self.mocks, self.max_steps, self.definition, start,
                state=machine.branch_state(decision.state, head), branch=head,
            )  # fmt: skip
            branch.run()
            self._adopt(branch, at_fork)
            end = max(end, branch.clock)
            self._apply(machine.branch_finished(head, branch.state, self.state))
            cancelled = any(isinstance(a, machine.CancelBranches) for a in self.decision.actions)
        self.clock = end
        return self._next_event(self.decision)

    def _adopt(self, branch: _Simulation, at_fork: int) -> None:
        """The branch's steps (its own branches' inside) join this run's answer after the fork's step."""
        steps = self.branch_steps.setdefault(at_fork, [])
        for view in branch._views():
            steps.append({**view, "branch": view.get("branch") or branch.branch})
        self.calls += branch.calls
        self._add_bytes(branch.recorded_bytes)

    def _answer_call(self, state: dict, call: machine.Call) -> machine.Event:
        return perform_call(call, state, self.env(), machine.MASKED, self._send)

    def _answer_async(self, decision: machine.Decision, call: machine.SendAsync) -> machine.Event:
        rendered = render_call(call, decision.state, self.env(), machine.MASKED, callback_context(SIMULATED_TOKEN))
        if isinstance(rendered, machine.CallFailed):
            return rendered
        self._record([machine.StepRecord(call.seq, {"request": rendered.recorded}, new=False)])
        event = perform(call, rendered, self._send)
        mock = self._mock(call.node, machine.Phase.FORWARD)
        if not isinstance(event, machine.AsyncAccepted) or mock.get("timeout"):
            return event  # a failed send is retried or fails the node; a timeout waits for the deadline
        self._apply(event)  # the service accepted: WAITING, acknowledged; the callback comes at once
        body = mock.get("callback", {**self.defaults.get((call.node, "callback"), {}), "status": "succeeded"})
        outcome = callback_outcome(self.spec, call.node, body, self.payload)
        return machine.CallbackArrived(call.node, call.attempt, outcome, body)

    def _send(self, call: AnyCall, rendered: Rendered) -> Outcome:
        """The mock transport: what the service would have answered (a worker's transport sends over HTTP)."""
        async_call = isinstance(call, machine.SendAsync)
        phase = machine.Phase.FORWARD if async_call else call.phase
        mock = self._mock(call.node, phase)
        self.calls += 1
        count = self.sent[(call.node, phase)] = self.sent.get((call.node, phase), 0) + 1
        if mock.get("timeout") and not async_call:
            timeout_s = rendered.wire.get("timeout_s")
            self.clock += timedelta(seconds=float(timeout_s or 0))
            return Outcome(None, "timeout", f"timed out after {timeout_s}s (simulated)")
        return Outcome(self._response(mock, count, async_call, self._default_body(call, phase, rendered)))

    def _default_body(self, call: AnyCall, phase: str, rendered: Rendered) -> Any:
        """No mocked body: the parts the definition reads from this node, under an echo of the request's
        body (as recorded: secrets stay masked). A compensation answers {}."""
        if phase == machine.Phase.COMPENSATION:
            return {}
        return _merged(self.defaults.get((call.node, "response"), {}), rendered.recorded.get("body"))

    @staticmethod
    def _response(mock: dict, count: int, async_call: bool, default_body: Any) -> dict:
        if count <= mock.get("fail_times", 0):
            status = mock.get("fail_status", DEFAULT_FAIL_STATUS)
        else:
            status = mock.get("status", 202 if async_call else 200)
        return {"status": status, "headers": dict(mock.get("headers") or {}), "body": mock.get("body", default_body)}

    def _mock(self, node: str, phase: str) -> dict:
        mock = self.mocks.get(node) or {}
        return (mock.get("compensation") or {}) if phase == machine.Phase.COMPENSATION else mock

    def _record(self, records: list[machine.StepRecord]) -> None:
        for record in records:
            self._count_bytes(record.fields)
            self.steps.setdefault(record.seq, {}).update(record.fields)

    def _count_bytes(self, fields: dict) -> None:
        """Stop before the answer outgrows TRAMA_SIMULATION_MAX_BYTES: templates can copy a mocked body
        into every request, and a loop repeats both up to ``max_steps`` times."""
        self._add_bytes(json_bytes(fields))

    def _add_bytes(self, size: int) -> None:
        limit = settings.TRAMA_SIMULATION_MAX_BYTES
        self.recorded_bytes += size
        if self.recorded_bytes > limit:
            raise SimulationTooLarge(
                f"the answer would be larger than TRAMA_SIMULATION_MAX_BYTES ({limit} bytes) after "
                f"{len(self.steps)} steps: lower max_steps or use smaller mocks and input"
            )

    def _views(self) -> list[dict]:
        """The steps in history order: each of this run's, then its branches' after a fork's step."""
        views = []
        for seq in sorted(self.steps):
            views.append({**_step_view(self.steps[seq]), "branch": self.branch or None})
            views += self.branch_steps.get(seq, [])
        return views

    def _result(self, state: dict, stopped: str | None = None) -> SimulationResult:
        steps = self._views()[: self.max_steps]
        error = state["error"]
        if stopped is not None:
            error = {"message": stopped, "node": state["node"]}
        elif state["status"] not in machine.FINAL_STATUSES:
            error = {"message": f"simulation stopped after max_steps ({self.max_steps}) steps", "node": state["node"]}
        path = [s["node_id"] for s in steps if s["phase"] == machine.Phase.FORWARD and s["attempt"] == 1]
        return SimulationResult(state["status"], state["output"], error, path, steps, self.calls)


def _step_view(fields: dict) -> dict:
    response = None
    if fields.get("response_status") is not None:
        response = {
            "status": fields["response_status"],
            "headers": fields.get("response_headers") or {},
            "body": fields.get("response_body"),
        }
    keys = ("node_id", "node_type", "phase", "attempt", "status", "request")
    view = {key: fields.get(key) for key in keys}
    view |= {"response": response, "detail": fields.get("detail"), "error": fields.get("error")}
    view |= {"started_at": fields.get("started_at"), "finished_at": fields.get("finished_at")}
    return view
