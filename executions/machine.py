"""The execution state machine: state + event -> new state + actions. Pure.

No ORM, no HTTP, no clock of its own: the caller (executions/services.py)
passes ``now`` and applies what comes back. The state is a JSON dict stored on
the execution row; see ``new_state`` for its keys.

The machine walks the normalized graph (docs/normalized-spec.md). It moves
through switch, sleep-that-is-over, succeed and fail nodes by itself and stops
at the first thing that needs the outside world: an HTTP call (``Call``), an
async call followed by a wait (``SendAsync``), or a pause (status SLEEPING or
WAITING with a ``due_at``). Every node attempt becomes a step record.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from definitions import rules, templating

# Statuses (mirrors executions.models.ExecutionStatus; kept as strings to stay ORM-free).
PENDING, RUNNING, WAITING, SLEEPING = "PENDING", "RUNNING", "WAITING", "SLEEPING"
COMPENSATING, SUCCEEDED, COMPENSATED, FAILED, CANCELLED = (
    "COMPENSATING",
    "SUCCEEDED",
    "COMPENSATED",
    "FAILED",
    "CANCELLED",
)
FINAL = frozenset({SUCCEEDED, COMPENSATED, FAILED, CANCELLED})
FORWARD, COMPENSATION, NOTIFY = "forward", "compensation", "notify"
# Which ``notify`` request an outcome sends (CANCELLED sends none: somebody asked for it).
NOTIFY_ON = {SUCCEEDED: "succeeded", FAILED: "failed", COMPENSATED: "failed"}
# A switch loop that never reaches a call would spin forever inside one decide().
MAX_HOPS_PER_DECISION = 1000
# A parent waiting on its branches is woken by their BranchFinished events; this is only a safety re-check.
JOIN_RECHECK = timedelta(hours=1)
# How long a sent-but-unacknowledged async request may stay unconfirmed before
# another worker sends it again (the sender died between commit and answer).
ASYNC_ACK_GRACE_S = 30.0


# --- Events ------------------------------------------------------------------------


@dataclass(frozen=True)
class Resume:
    """A worker holds the execution: carry on from where it stands."""


@dataclass(frozen=True)
class CallSucceeded:
    """``record`` holds what the step stores: masked request, response status/headers/body."""

    seq: int
    response: dict
    record: dict = field(default_factory=dict)


@dataclass(frozen=True)
class CallFailed:
    """``failure`` is "network", "timeout", "status", "template" or "egress"."""

    seq: int
    failure: str
    error: str
    response: dict | None = None
    record: dict = field(default_factory=dict)


@dataclass(frozen=True)
class AsyncAccepted:
    seq: int
    response: dict
    record: dict = field(default_factory=dict)


@dataclass(frozen=True)
class CallbackArrived:
    """``received_at`` (ISO) is when it reached Trama, if not now (a callback parked for the sender)."""

    node: str
    attempt: int
    outcome: str  # "succeeded" | "failed"
    body: Any
    received_at: str | None = None


@dataclass(frozen=True)
class Heartbeat:
    node: str
    attempt: int


@dataclass(frozen=True)
class Cancel:
    """``overrule_success``: the cancel was accepted while a worker made the last call; its
    success is not written yet, so the cancel still applies (and compensates it too)."""

    compensate: bool = True
    overrule_success: bool = False


@dataclass(frozen=True)
class Wake:
    pass


@dataclass(frozen=True)
class Retry:
    skip: bool = False


@dataclass(frozen=True)
class BranchFinished:
    """A branch execution of a parallel node ended: its status, its nodes' results, its compensable nodes."""

    branch: str
    status: str
    results: dict
    done: list


Event = (
    BranchFinished
    | Resume
    | CallSucceeded
    | CallFailed
    | AsyncAccepted
    | CallbackArrived
    | Heartbeat
    | Cancel
    | Wake
    | Retry
)


# --- Actions -----------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """Send ``request`` (not yet rendered) and report CallSucceeded / CallFailed."""

    seq: int
    node: str
    phase: str
    attempt: int
    request: dict


@dataclass(frozen=True)
class SendAsync:
    """Commit the WAITING state first, then send, then report AsyncAccepted / CallFailed."""

    seq: int
    node: str
    attempt: int
    request: dict
    deadline: datetime


@dataclass(frozen=True)
class Fork:
    """Start one branch execution per head node (in the same transaction as this decision)."""

    node: str
    branches: list


@dataclass(frozen=True)
class CancelBranches:
    """Cancel these still-running branches (after this decision is committed)."""

    branches: list
    compensate: bool


@dataclass(frozen=True)
class StepRecord:
    """Create (``new``) or update one history row, identified by its ``seq``."""

    seq: int
    fields: dict
    new: bool


@dataclass
class Decision:
    state: dict
    actions: list = field(default_factory=list)
    due_at: datetime | None = None  # when to look again; None with a Call/SendAsync (the runner owns it)

    @property
    def status(self) -> str:
        return self.state["status"]

    @property
    def call(self) -> Call | SendAsync | None:
        return next((a for a in self.actions if isinstance(a, Call | SendAsync)), None)

    @property
    def steps(self) -> list[StepRecord]:
        return [a for a in self.actions if isinstance(a, StepRecord)]


class EventRejected(Exception):
    """The event does not apply to the execution as it stands (e.g. a late callback)."""


# --- State ---------------------------------------------------------------------------


def new_state() -> dict:
    return {
        "status": PENDING,
        "node": None,  # current node id
        "phase": FORWARD,
        "attempt": 0,  # attempt of the current node (or current compensation)
        "seq": 0,  # last step seq allocated
        "open_seq": None,  # the step of the current call, wait or sleep
        "results": {},  # node id -> {"response": {...}, "callback": {"body": ...}}: template data
        "done": [],  # forward nodes that succeeded and have a compensation, in order
        "compensate": [],  # compensations still to run, next first
        "failure": None,  # the error that ended the forward path
        "cancelled": False,
        "sleep": None,  # {"until": iso, "kind": "node" | "backoff"}
        "wait": None,  # {"deadline": iso, "acked": bool, "resend_at": iso}
        "last_call": None,  # node whose response body is the default output
        "output": None,
        "error": None,
    }


def copy_json(value: Any) -> Any:
    """A deep copy of JSON data (dicts, lists, scalars): several times faster than copy.deepcopy."""
    if isinstance(value, dict):
        return {key: copy_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [copy_json(item) for item in value]
    return value


def branch_state(parent: dict, head: str) -> dict:
    """The state a branch execution starts from: at its head node, seeing what the parent saw."""
    state = new_state()
    state["node"], state["branch"] = head, head
    state["results"] = copy_json(parent["results"])
    return state


@dataclass(frozen=True)
class Env:
    """What the machine may read besides the state: the graph, the input, the clock."""

    spec: dict
    payload: Any
    execution: dict  # id, definition, version, started_at
    now: datetime
    key: str = ""  # execution id, seeds the deterministic back-off jitter

    def node(self, node_id: str) -> dict:
        return self.spec["nodes"][node_id]


def template_data(env: Env, state: dict, secrets: dict | None = None, callback: dict | None = None) -> dict:
    """The data templates and switch rules read (SPEC 2.3)."""
    data = {
        "payload": env.payload,
        "nodes": state["results"],
        "execution": env.execution,
        "secrets": secrets if secrets is not None else {},
    }
    if callback is not None:
        data["callback"] = callback
    return data


def decide(env: Env, state: dict, event: Event) -> Decision:
    """Apply ``event`` to ``state``; the input state is not modified."""
    st = copy_json(state)
    if st["status"] in FINAL and not _applies_when_final(st, event):
        raise EventRejected(f"execution is {st['status']}")
    handler = _HANDLERS[type(event)]
    return handler(env, st, event)


def _applies_when_final(st: dict, event: Event) -> bool:
    if isinstance(event, Retry):
        return st["status"] == FAILED
    return isinstance(event, Cancel) and event.overrule_success and st["status"] == SUCCEEDED


# --- Event handlers ------------------------------------------------------------------


def _on_resume(env: Env, st: dict, event: Resume) -> Decision:
    d = Decision(st)
    if st.get("join") and st["join"]["pending"]:
        d.due_at = env.now + JOIN_RECHECK  # branches still running: they wake this execution
        return d
    if st["status"] == PENDING:
        st["status"], st["node"], st["attempt"] = RUNNING, st["node"] or env.spec["start"], 1
        return _run(env, d)
    if st["status"] == SLEEPING:
        return _resume_sleep(env, d)
    if st["status"] == WAITING:
        return _resume_wait(env, d)
    # RUNNING or COMPENSATING: a worker died mid-step or a callback made it runnable.
    return _run(env, d)


def _resume_sleep(env: Env, d: Decision) -> Decision:
    st = d.state
    until = datetime.fromisoformat(st["sleep"]["until"])
    if env.now < until:
        d.due_at = until  # woken early (a duplicate wake-up): sleep on
        return d
    return _end_sleep(env, d)


def _end_sleep(env: Env, d: Decision) -> Decision:
    st = d.state
    kind = st["sleep"]["kind"]
    st["sleep"] = None
    if kind == "node":
        _close_step(d, env, "succeeded")
        st["status"] = RUNNING
        return _goto(env, d, env.node(st["node"]).get("next"))
    st["status"] = _working_status(st)
    return _run(env, d)  # back-off over: the next attempt


def _resume_wait(env: Env, d: Decision) -> Decision:
    st = d.state
    wait = st["wait"]
    deadline = datetime.fromisoformat(wait["deadline"])
    if env.now >= deadline:
        return _wait_timed_out(env, d)
    if wait["acked"]:
        d.due_at = deadline
        return d
    resend_at = datetime.fromisoformat(wait["resend_at"])
    if env.now < resend_at:
        d.due_at = min(resend_at, deadline)
        return d
    # The sender died between committing WAITING and getting its answer: send again (same attempt, same key).
    return _send_async(env, d, resend=True)


def _on_call_succeeded(env: Env, st: dict, event: CallSucceeded) -> Decision:
    d = Decision(st)
    _expect_open(st, event.seq)
    _close_step(d, env, "succeeded", extra=event.record)
    node_id = st["node"]
    if st["phase"] == NOTIFY:
        return _end_notify(d, env)
    if st["phase"] == COMPENSATION:
        st["compensate"].pop(0)
        st["attempt"] = 1
        return _run(env, d)
    st["results"][node_id] = {"response": event.response}
    st["last_call"] = node_id
    if env.node(node_id).get("compensation"):
        st["done"].append(node_id)
    return _goto(env, d, env.node(node_id).get("next"))


def _on_call_failed(env: Env, st: dict, event: CallFailed) -> Decision:
    d = Decision(st)
    _expect_open(st, event.seq)
    _close_step(d, env, "failed", error={"failure": event.failure, "message": event.error}, extra=event.record)
    if event.response is not None and st["phase"] == FORWARD:
        st["results"][st["node"]] = {"response": event.response}
    policy = _retry_policy(env, st)
    error = {"node": st["node"], "attempt": st["attempt"], "failure": event.failure, "message": event.error}
    if st["attempt"] < policy["max_attempts"] and _retryable(policy, event):
        return _back_off(env, d, policy)
    return _fail_node(env, d, error)


def _on_async_accepted(env: Env, st: dict, event: AsyncAccepted) -> Decision:
    d = Decision(st)
    _expect_open(st, event.seq)
    if st["status"] != WAITING or st["wait"]["acked"]:
        raise EventRejected("not waiting for an acknowledgement")
    st["wait"]["acked"] = True
    st["results"][st["node"]] = {"response": event.response}
    _update_open_step(d, event.record)
    d.due_at = datetime.fromisoformat(st["wait"]["deadline"])
    return d


def _on_callback(env: Env, st: dict, event: CallbackArrived) -> Decision:
    d = Decision(st)
    _expect_waiting_for(st, event.node, event.attempt)
    _expect_before_deadline(st, datetime.fromisoformat(event.received_at) if event.received_at else env.now)
    st["wait"] = None
    result = st["results"].setdefault(event.node, {})
    result["callback"] = {"body": event.body}
    st["status"] = RUNNING
    if event.outcome == "succeeded":
        _close_step(d, env, "succeeded", detail={"callback": event.body})
        st["last_call"] = event.node
        if env.node(event.node).get("compensation"):
            st["done"].append(event.node)
        return _goto(env, d, env.node(event.node).get("next"), run=False)
    _close_step(d, env, "failed", detail={"callback": event.body}, error={"message": "callback reported failure"})
    policy = env.node(event.node)["retry"]
    error = {"node": event.node, "attempt": event.attempt, "failure": "callback", "message": "callback said failed"}
    if st["attempt"] < policy["max_attempts"]:
        return _back_off(env, d, policy)
    return _fail_node(env, d, error, run=False)


def _on_heartbeat(env: Env, st: dict, event: Heartbeat) -> Decision:
    d = Decision(st)
    _expect_waiting_for(st, event.node, event.attempt)
    _expect_before_deadline(st, env.now)
    node = env.node(event.node)
    extension = node.get("heartbeat_s") or node["timeout_s"]
    deadline = max(datetime.fromisoformat(st["wait"]["deadline"]), env.now + timedelta(seconds=extension))
    st["wait"]["deadline"] = deadline.isoformat()
    d.due_at = deadline if st["wait"]["acked"] else datetime.fromisoformat(st["wait"]["resend_at"])
    return d


def _on_cancel(env: Env, st: dict, event: Cancel) -> Decision:
    d = Decision(st)
    st["cancelled"] = True
    st["output"] = None
    _close_open_step(d, env, "cancelled")
    _abandon_wait(env, st)
    st["sleep"] = None
    st["failure"] = st["failure"] or {"message": "cancelled"}
    join = st.get("join")
    if join and join["pending"]:
        join["failed"] = True
        d.actions.append(CancelBranches(list(join["pending"]), event.compensate))
    if not event.compensate:
        return _finish(d, env, CANCELLED, error={"message": "cancelled"})
    if st["phase"] == FORWARD:
        _start_compensation(st)
    st["status"] = COMPENSATING
    return _run(env, d, run=False)


def _on_wake(env: Env, st: dict, event: Wake) -> Decision:
    if st["status"] != SLEEPING:
        raise EventRejected("execution is not sleeping")
    d = Decision(st)
    st["sleep"]["until"] = env.now.isoformat()
    d.due_at = env.now
    return d


def _on_retry(env: Env, st: dict, event: Retry) -> Decision:
    """Resume a FAILED execution from the node, or compensation, that failed."""
    if st["status"] != FAILED:
        raise EventRejected("only a FAILED execution can be retried")
    d = Decision(st)
    st["error"], st["output"] = None, None
    if st["phase"] == COMPENSATION and event.skip:
        st["compensate"].pop(0)
    elif event.skip:
        raise EventRejected("skip applies to a failed compensation only")
    st["attempt"] = st.get("attempt", 0) + 1 if not event.skip else 1
    st["status"] = _working_status(st)
    if st["phase"] == FORWARD:
        st["failure"] = None
    d.due_at = env.now
    return d


# --- Parallel branches ------------------------------------------------------------------


def _enter_parallel(env: Env, d: Decision, node: dict) -> None:
    """Fork: each branch runs as an execution of its own, so any free worker advances it."""
    st = d.state
    _open_step(d, env, status="waiting", detail={"branches": node["branches"]})
    st["join"] = {"node": st["node"], "pending": list(node["branches"]), "done": {}, "failed": False}
    st["status"] = WAITING
    d.actions.append(Fork(st["node"], list(node["branches"])))
    d.due_at = env.now + JOIN_RECHECK


def _on_branch_finished(env: Env, st: dict, event: BranchFinished) -> Decision:
    d = Decision(st)
    join = st.get("join")
    if not join or event.branch not in join["pending"]:
        raise EventRejected(f"not waiting for branch '{event.branch}'")
    join["pending"].remove(event.branch)
    st["results"].update(event.results)
    if event.status == FAILED:
        st["branch_failed_for_good"] = True  # a branch needs an operator, so the whole execution does
    if event.status == SUCCEEDED:
        join["done"][event.branch] = event.done
    elif not join["failed"]:
        join["failed"] = True
        message = f"branch '{event.branch}' ended {event.status}"
        st["failure"] = {"node": join["node"], "branch": event.branch, "failure": "branch", "message": message}
        if join["pending"]:
            d.actions.append(CancelBranches(list(join["pending"]), compensate=True))
    if join["pending"]:
        d.due_at = env.now + JOIN_RECHECK
        return d
    return _join(env, d)


def _join(env: Env, d: Decision) -> Decision:
    """Every branch has ended: go on at ``next``, or compensate what ran before the fork."""
    st = d.state
    join = st.pop("join")
    node = env.node(join["node"])
    if not join["failed"]:
        _close_step(d, env, "succeeded")
        for head in node["branches"]:  # branch steps are compensated by this execution from now on
            st["done"] += join["done"].get(head, [])
        st["status"], st["node"] = RUNNING, join["node"]
        return _goto(env, d, node.get("next"), run=False)
    _close_open_step(d, env, "failed")
    if st["phase"] != COMPENSATION:
        _start_compensation(st)
    st["status"] = COMPENSATING
    return _run(env, d, run=False)


# --- Walking the graph ------------------------------------------------------------------


def _run(env: Env, d: Decision, run: bool = True) -> Decision:
    """Advance from the current position until a call or a pause.

    ``run=False`` is for events applied outside a worker (a callback, a cancel):
    they only make the execution runnable (due now) and leave the walking to
    the worker the caller enqueues.
    """
    if not run:
        d.due_at = env.now
        return d
    st = d.state
    for _ in range(MAX_HOPS_PER_DECISION):
        if st["status"] in FINAL or d.call is not None or d.due_at is not None:
            return d
        if st["phase"] == COMPENSATION:
            _next_compensation(env, d)
        elif st["phase"] == NOTIFY:
            _notify_call(env, d)
        else:
            _enter_node(env, d)
    return _fail_node(env, d, {"node": st["node"], "message": "too many nodes without a call in one step (a loop?)"})


def _goto(env: Env, d: Decision, next_id: str | None, run: bool = True) -> Decision:
    st = d.state
    if next_id is None:
        return _succeed(env, d, None)
    st["node"], st["attempt"] = next_id, 1
    return _run(env, d, run)


def _enter_node(env: Env, d: Decision) -> None:
    st = d.state
    node = env.node(st["node"])
    kind = node["type"]
    if kind == "task":
        d.actions.append(Call(_open_step(d, env), st["node"], FORWARD, st["attempt"], node["request"]))
    elif kind == "async_task":
        _send_async(env, d)
    elif kind == "switch":
        _enter_switch(env, d, node)
    elif kind == "sleep":
        _enter_sleep(env, d, node)
    elif kind == "succeed":
        _enter_succeed(env, d, node)
    elif kind == "fail":
        _enter_fail(env, d, node)
    elif kind == "parallel":
        _enter_parallel(env, d, node)
    else:  # validation rejects unknown types
        _fail_node(env, d, {"node": st["node"], "message": f"node type '{kind}' is not supported by this engine"})


def _send_async(env: Env, d: Decision, resend: bool = False) -> Decision:
    st = d.state
    node = env.node(st["node"])
    seq = st["open_seq"] if resend else _open_step(d, env, status="waiting")
    deadline = env.now + timedelta(seconds=node["timeout_s"])
    if resend:
        deadline = datetime.fromisoformat(st["wait"]["deadline"])
    resend_at = env.now + timedelta(seconds=node["request"]["timeout_s"] + ASYNC_ACK_GRACE_S)
    st["status"] = WAITING
    st["wait"] = {"deadline": deadline.isoformat(), "acked": False, "resend_at": resend_at.isoformat()}
    d.actions.append(SendAsync(seq, st["node"], st["attempt"], node["request"], deadline))
    return d


def _enter_switch(env: Env, d: Decision, node: dict) -> None:
    st = d.state
    data = template_data(env, st, secrets=_MASKED)
    try:
        target, matched = _pick_case(node, data)
    except rules.RuleError as exc:
        _open_step(d, env)
        _close_step(d, env, "failed", error={"message": str(exc)})
        _fail_node(env, d, {"node": st["node"], "failure": "rule", "message": str(exc)})
        return
    _open_step(d, env)
    _close_step(d, env, "succeeded", detail={"matched_case": matched, "next": target})
    st["node"], st["attempt"] = target, 1


def _pick_case(node: dict, data: dict) -> tuple[str, int | None]:
    for index, case in enumerate(node["cases"]):
        if rules.evaluate(case["when"], data):
            return case["next"], index
    return node["default"], None


def _enter_sleep(env: Env, d: Decision, node: dict) -> None:
    st = d.state
    try:
        until = _sleep_until(env, st, node)
    except (templating.TemplateError, ValueError) as exc:
        _open_step(d, env)
        _close_step(d, env, "failed", error={"message": str(exc)})
        _fail_node(env, d, {"node": st["node"], "failure": "template", "message": str(exc)})
        return
    _open_step(d, env, status="sleeping", detail={"until": until.isoformat()})
    if until <= env.now:
        _close_step(d, env, "succeeded")
        st["node"], st["attempt"] = node.get("next"), 1
        if st["node"] is None:
            _succeed(env, d, None)
        return
    st["status"] = SLEEPING
    st["sleep"] = {"until": until.isoformat(), "kind": "node"}
    d.due_at = until


def _sleep_until(env: Env, st: dict, node: dict) -> datetime:
    if node.get("duration_s") is not None:
        return env.now + timedelta(seconds=node["duration_s"])
    raw = templating.render(node["until"], template_data(env, st, secrets=_MASKED))
    until = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    if until.tzinfo is None:
        raise ValueError(f"'until' {raw!r} has no time zone")
    return until


def _enter_succeed(env: Env, d: Decision, node: dict) -> None:
    st = d.state
    _open_step(d, env)
    try:
        output = _render_value(env, st, node.get("output"))
    except templating.TemplateError as exc:
        _close_step(d, env, "failed", error={"message": str(exc)})
        _fail_node(env, d, {"node": st["node"], "failure": "template", "message": str(exc)})
        return
    _close_step(d, env, "succeeded")
    _succeed(env, d, output, explicit=node.get("output") is not None)


def _enter_fail(env: Env, d: Decision, node: dict) -> None:
    st = d.state
    _open_step(d, env)
    try:
        error = _render_value(env, st, node.get("error"))
    except templating.TemplateError as exc:
        error = {"message": str(exc)}
    _close_step(d, env, "failed", error=error)
    failure = {"node": st["node"], "failure": "fail_node", "message": "fail node reached", "error": error}
    _fail_node(env, d, failure, on_failure="compensate")


def _render_value(env: Env, st: dict, value: Any) -> Any:
    return templating.render(value, template_data(env, st, secrets=_MASKED)) if value is not None else None


class _Masked(dict):
    """Secrets as seen by anything that is stored: every name reads as '***'."""

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: str) -> str:
        return "***"

    def get(self, key: str, default: Any = None) -> str:
        return "***"


_MASKED = _Masked()


# --- Failure, retry and compensation ------------------------------------------------------


def _retry_policy(env: Env, st: dict) -> dict:
    if st["phase"] == NOTIFY:
        return env.spec["notify"][st["final"]["kind"]]["retry"]
    node = env.node(st["node"])
    if st["phase"] == COMPENSATION:
        return env.node(st["compensate"][0])["compensation"]["retry"]
    return node["retry"]


def _retryable(policy: dict, event: CallFailed) -> bool:
    if event.failure in ("network", "timeout"):
        return event.failure in policy["retry_on"]
    if event.failure != "status" or event.response is None:
        return False  # template and egress errors fail the same way every time
    status = event.response["status"]
    return status in policy["retry_on"] or f"{status // 100}xx" in policy["retry_on"]


def backoff_seconds(policy: dict, attempt: int, key: str) -> float:
    """Exponential back-off with ±20% jitter derived from ``key`` (deterministic, so testable), capped."""
    base = policy["backoff_s"] * policy["multiplier"] ** (attempt - 1)
    digest = hashlib.sha256(f"{key}:{attempt}".encode()).digest()
    jitter = 0.8 + 0.4 * (int.from_bytes(digest[:4], "big") / 2**32)
    return min(policy["max_backoff_s"], base * jitter)


def _back_off(env: Env, d: Decision, policy: dict) -> Decision:
    st = d.state
    delay = backoff_seconds(policy, st["attempt"], f"{env.key}:{st['node']}:{st['phase']}")
    st["attempt"] += 1
    if delay <= 0:
        st["status"] = _working_status(st)
        d.due_at = env.now
        return d
    until = env.now + timedelta(seconds=delay)
    st["status"] = SLEEPING
    st["sleep"] = {"until": until.isoformat(), "kind": "backoff"}
    d.due_at = until
    return d


def _fail_node(env: Env, d: Decision, error: dict, run: bool = True, on_failure: str | None = None) -> Decision:
    """A node failed for good: compensate, stop, or branch, as its ``on_failure`` says."""
    st = d.state
    st["open_seq"] = None
    if st["phase"] == NOTIFY:
        return _end_notify(d, env)  # a notification that fails for good changes no outcome
    if st["phase"] == COMPENSATION:
        return _finish(d, env, FAILED, error={**error, "phase": COMPENSATION})
    node = env.node(st["node"])
    policy = on_failure or node.get("on_failure") or "compensate"
    if policy not in ("compensate", "fail"):
        st["results"].setdefault(st["node"], {})["error"] = error
        st["status"] = RUNNING
        return _goto(env, d, policy, run)
    st["failure"] = error
    if policy == "fail":
        return _finish(d, env, FAILED, error=error)
    _start_compensation(st)
    st["status"] = COMPENSATING
    return _run(env, d, run)


def _wait_timed_out(env: Env, d: Decision) -> Decision:
    st = d.state
    node = env.node(st["node"])
    _close_step(d, env, "timed_out", error={"message": f"no callback within {node['timeout_s']}s"})
    _abandon_wait(env, st)
    st["status"] = RUNNING
    error = {"node": st["node"], "attempt": st["attempt"], "failure": "timeout", "message": "callback timed out"}
    return _fail_node(env, d, error, on_failure=node.get("on_timeout") or "compensate")


def _abandon_wait(env: Env, st: dict) -> None:
    """Give up a wait. A request the service already accepted may have taken effect
    (the callback just never came), so its compensation runs with the others."""
    wait, st["wait"] = st["wait"], None
    if wait and wait["acked"] and env.node(st["node"]).get("compensation") and st["node"] not in st["done"]:
        st["done"].append(st["node"])


def _start_compensation(st: dict) -> None:
    st["phase"] = COMPENSATION
    st["compensate"] = list(reversed(st["done"]))
    st["attempt"] = 1


def _next_compensation(env: Env, d: Decision) -> None:
    st = d.state
    if not st["compensate"]:
        status = CANCELLED if st["cancelled"] else FAILED if st.get("branch_failed_for_good") else COMPENSATED
        _finish(d, env, status, error=st["failure"])
        return
    node_id = st["compensate"][0]
    st["node"] = node_id
    request = env.node(node_id)["compensation"]
    d.actions.append(Call(_open_step(d, env, phase=COMPENSATION), node_id, COMPENSATION, st["attempt"], request))


def _succeed(env: Env, d: Decision, output: Any, explicit: bool = False) -> Decision:
    st = d.state
    if not explicit:
        last = st["results"].get(st["last_call"] or "", {})
        output = (last.get("callback") or last.get("response") or {}).get("body")
    return _finish(d, env, SUCCEEDED, output=output)


def _finish(d: Decision, env: Env, status: str, output: Any = None, error: Any = None, notify: bool = True) -> Decision:
    """End the execution, or first send its ``notify`` request for this outcome (the outcome waits in ``final``)."""
    st = d.state
    kind = NOTIFY_ON.get(status)
    if notify and kind and not st.get("branch") and (env.spec.get("notify") or {}).get(kind):
        st["final"] = {"status": status, "output": output, "error": error, "kind": kind, "phase": st["phase"],
                       "node": st["node"], "attempt": st["attempt"]}  # fmt: skip
        st["status"] = _working_status(st)
        st["phase"], st["node"], st["attempt"] = NOTIFY, f"notify.{kind}", 1
        st["open_seq"], st["sleep"], st["wait"] = None, None, None
        return _run(env, d)
    st["status"], st["output"], st["error"] = status, output, error
    st["open_seq"], st["sleep"], st["wait"] = None, None, None
    d.due_at = None
    return d


def _notify_call(env: Env, d: Decision) -> None:
    st = d.state
    request = env.spec["notify"][st["final"]["kind"]]
    d.actions.append(Call(_open_step(d, env), st["node"], NOTIFY, st["attempt"], request))


def _end_notify(d: Decision, env: Env) -> Decision:
    """The notification is done (sent, or given up): the outcome it waited for takes effect."""
    st = d.state
    final = st.pop("final")
    st["phase"], st["node"], st["attempt"] = final["phase"], final["node"], final["attempt"]
    st["open_seq"] = None
    return _finish(d, env, final["status"], final["output"], final["error"], notify=False)


def _working_status(st: dict) -> str:
    """RUNNING or COMPENSATING: what an execution that is not paused shows."""
    phase = st["final"]["phase"] if st["phase"] == NOTIFY else st["phase"]
    return COMPENSATING if phase == COMPENSATION else RUNNING


def _node_type(env: Env, st: dict) -> str:
    return "notify" if st["phase"] == NOTIFY else env.node(st["node"])["type"]


# --- Step records -----------------------------------------------------------------------


def _open_step(d: Decision, env: Env, status: str | None = None, phase: str | None = None, detail=None) -> int:
    """Allocate the next step of the history for the current node attempt.

    Waits and sleeps are written at once (status given) so the history shows
    them while they last; calls and instant nodes are written when they close.
    """
    st = d.state
    st["seq"] += 1
    st["open_seq"] = st["seq"]
    fields = {
        "node_id": st["node"],
        "node_type": _node_type(env, st),
        "phase": phase or st["phase"],
        "attempt": st["attempt"],
        "started_at": env.now.isoformat(),
    }
    if detail is not None:
        fields["detail"] = detail
    st["open_step"] = {"fields": fields, "written": status is not None}
    if status is not None:
        d.actions.append(StepRecord(st["seq"], {**fields, "status": status}, new=True))
    return st["seq"]


def _close_step(d: Decision, env: Env, status: str, detail=None, error=None, extra: dict | None = None) -> None:
    st = d.state
    seq, opened = st["open_seq"], st.get("open_step")
    if seq is None or opened is None:
        return
    fields = {} if opened["written"] else dict(opened["fields"])
    fields.update(extra or {})
    fields.update({"status": status, "finished_at": env.now.isoformat()})
    if detail is not None:
        fields["detail"] = {**(opened["fields"].get("detail") or {}), **detail}
    if error is not None:
        fields["error"] = error
    d.actions.append(StepRecord(seq, fields, new=not opened["written"]))
    st["open_seq"], st["open_step"] = None, None


def _update_open_step(d: Decision, fields: dict) -> None:
    """Add to the open step (an async request's answer) without closing it."""
    st = d.state
    opened = st["open_step"]
    if opened["written"]:
        d.actions.append(StepRecord(st["open_seq"], fields, new=False))
    else:
        opened["fields"].update(fields)


def _close_open_step(d: Decision, env: Env, status: str) -> None:
    if d.state["open_seq"] is not None:
        _close_step(d, env, status)


def _expect_open(st: dict, seq: int) -> None:
    if st["open_seq"] != seq:
        raise EventRejected(f"step {seq} is not the open step")


def _expect_before_deadline(st: dict, when: datetime) -> None:
    """A callback after the deadline is late even if no worker has timed the node out yet."""
    if when >= datetime.fromisoformat(st["wait"]["deadline"]):
        raise EventRejected("the node timed out")


def _expect_waiting_for(st: dict, node: str, attempt: int) -> None:
    if st["status"] != WAITING or st["node"] != node or st["attempt"] != attempt or st["cancelled"]:
        raise EventRejected("the node no longer waits for this callback")


# Defined last: every handler above is in scope.
_HANDLERS = {
    Resume: _on_resume,
    CallSucceeded: _on_call_succeeded,
    CallFailed: _on_call_failed,
    AsyncAccepted: _on_async_accepted,
    CallbackArrived: _on_callback,
    Heartbeat: _on_heartbeat,
    Cancel: _on_cancel,
    Wake: _on_wake,
    Retry: _on_retry,
    BranchFinished: _on_branch_finished,
}
