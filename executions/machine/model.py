"""The state machine's vocabulary: events, actions, the decision, the state and Env (statuses: executions.choices)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NotRequired, TypedDict, TypeVar

from definitions import rules, templating
from executions.choices import ExecutionStatus, Phase
from executions.machine import original

# Which ``notify`` request an outcome sends (CANCELLED sends none: somebody asked for it).
NOTIFY_ON: dict[str, str] = {
    ExecutionStatus.SUCCEEDED: "succeeded",
    ExecutionStatus.FAILED: "failed",
    ExecutionStatus.COMPENSATED: "failed",
}
# A switch loop that never reaches a call would spin forever inside one decide().
MAX_HOPS_PER_DECISION = 1000
# A parent waiting on its branches is woken by their BranchFinished events; this is only a safety re-check.
JOIN_RECHECK = timedelta(hours=1)
# After a retry of stopped branches: the branch retries are carried out once the parent's retry commits,
# so a crash in between would leave them stopped. The re-check asks for them again (a branch already
# retried refuses), soon rather than in an hour.
RETRIED_JOIN_RECHECK = timedelta(seconds=30)
# How long a sent-but-unacknowledged async request may stay unconfirmed before
# another worker sends it again (the sender died between commit and answer).
ASYNC_ACK_GRACE_S = 30.0


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
    # FAILED at a node whose on_failure/on_timeout is "fail", nothing undone: a retry can resume it.
    stopped: bool = False


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
class RetryBranches:
    """Retry these stopped branches from their failed step (after this decision is committed).

    Asked again by every re-check while they are awaited: retrying a branch that is already
    running again is refused, so carrying it out twice does nothing more."""

    branches: list


@dataclass(frozen=True)
class StepRecord:
    """Create (``new``) or update one history row, identified by its ``seq``."""

    seq: int
    fields: dict
    new: bool


@dataclass
class Decision:
    state: State
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


class Sleep(TypedDict):
    until: str  # ISO instant
    kind: str  # "node" (a sleep node) or "backoff" (between two attempts)
    since: str  # ISO: when it began, for its span (a state stored before this key existed lacks it)


class Wait(TypedDict):
    deadline: str  # ISO: the callback's deadline (pushed by heartbeats)
    acked: bool  # the service answered the async request
    resend_at: str  # ISO: send again if still not acked (the sender died)


class OpenStep(TypedDict):
    fields: dict[str, Any]  # the step record's fields so far
    written: bool  # already a row (a wait or a sleep), so closing it updates


class Join(TypedDict):
    node: str  # the parallel node
    pending: list[str]  # branch heads still running
    done: dict[str, list[str]]  # branch head -> its compensable nodes, for the branches that succeeded
    failed: bool  # a branch failed (or the parent was cancelled): everything is compensated after the join
    # Branch heads that ended FAILED without compensating (BranchFinished.stopped): the parent stops
    # FAILED at the join, keeping it, and its retry runs them again. A join stored before lacks the key.
    stopped: list[str]
    # Set by that retry: the branches it retried, asked for again by each re-check until they report,
    # and the re-check's current gap in seconds (doubling). Absent on a first join.
    retried: NotRequired[list[str]]
    recheck_s: NotRequired[float]


class Final(TypedDict):
    """An outcome waiting for its ``notify`` request, and where the execution stood when it came."""

    status: str
    output: Any
    error: Any
    kind: str  # "succeeded" | "failed": which notify request
    phase: str
    node: str | None
    attempt: int


class State(TypedDict):
    """The machine's working memory, stored as JSON on the execution row. ``new_state`` sets every key.

    A state stored before a key existed may lack it: read ``join``, ``final``,
    ``open_step``, ``branch`` and ``branch_failed_for_good`` with ``.get``.
    """

    status: str
    node: str | None  # current node id
    phase: str  # Phase: forward, compensation or notify
    attempt: int  # attempt of the current node (or current compensation)
    seq: int  # last step seq allocated
    open_seq: int | None  # the step of the current call, wait or sleep
    open_step: OpenStep | None
    results: dict[str, dict[str, Any]]  # node id -> {"response": {...}, "callback": {"body": ...}}: template data
    done: list[str]  # forward nodes that succeeded and have a compensation, in order
    compensate: list[str]  # compensations still to run, next first
    failure: dict[str, Any] | None  # the error that ended the forward path
    cancelled: bool
    sleep: Sleep | None
    wait: Wait | None
    join: Join | None  # a parallel node waiting for its branches
    final: Final | None  # an outcome waiting for its notify request
    branch: str | None  # a branch execution's head node
    branch_failed_for_good: bool  # a branch ended FAILED: so does this execution, after compensating
    last_call: str | None  # node whose response body is the default output
    trail: list[str]  # forward nodes in the order they completed: kept only for the original's dialect (original.py)
    output: Any
    error: Any


def new_state() -> State:
    return {
        "status": ExecutionStatus.PENDING,
        "node": None,
        "phase": Phase.FORWARD,
        "attempt": 0,
        "seq": 0,
        "open_seq": None,
        "open_step": None,
        "results": {},
        "done": [],
        "compensate": [],
        "failure": None,
        "cancelled": False,
        "sleep": None,
        "wait": None,
        "join": None,
        "final": None,
        "branch": None,
        "branch_failed_for_good": False,
        "last_call": None,
        "trail": [],
        "output": None,
        "error": None,
    }


_T = TypeVar("_T")


def present(value: _T | None) -> _T:
    """``value``, which the state's invariants say is set at this point (a wait while WAITING,
    a join while a parallel node waits...); None here is a bug in the machine."""
    if value is None:
        raise AssertionError("the state lacks a value its status promises")
    return value


def node_at(st: State) -> str:
    """The current node: set from the first Resume on (None only while PENDING)."""
    return present(st["node"])


def copy_json(value: Any) -> Any:
    """A deep copy of JSON data (dicts, lists, scalars): several times faster than copy.deepcopy."""
    if isinstance(value, dict):
        return {key: copy_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [copy_json(item) for item in value]
    return value


def branch_state(parent: State, head: str) -> State:
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


def dialect(env: Env) -> dict | None:
    """The original runtime's dialect the definition is written in (docs/upstream.md), or None: Trama's own."""
    value = env.spec.get("dialect")
    return value if templating.is_original(value) else None


def template_data(env: Env, state: State, secrets: dict | None = None, callback: dict | None = None) -> dict:
    """The data templates read (SPEC 2.3), or what the original gives them for a definition in its dialect."""
    if (written_for := dialect(env)) is not None:
        return original.template_context(written_for, env.payload, env.execution, dict(state), callback)
    data = {
        "payload": env.payload,
        "nodes": state["results"],
        "execution": env.execution,
        "secrets": secrets if secrets is not None else {},
    }
    if callback is not None:
        data["callback"] = callback
    return data


def render(env: Env, state: State, value: Any, secrets: dict | None = None, callback: dict | None = None) -> Any:
    """``value`` with its templates rendered by the definition's rules (raises templating.TemplateError)."""
    return templating.render(value, template_data(env, state, secrets, callback), dialect(env))


def rule_data(env: Env, state: State) -> dict:
    """The data switch rules read: the templates' (secrets masked), or the original's switch data."""
    if dialect(env) is not None:
        return original.switch_data(env.payload, dict(state))
    return template_data(env, state, secrets=MASKED)


def rule_holds(env: Env, rule: Any, data: Any) -> bool:
    """Whether a switch or callback rule holds; raises rules.RuleError for a rule that cannot be judged.

    In the original's dialect a rule that raises is false and any list or object is true, as its
    JsonLogicEvaluator.evaluateBool (saga/workflow/JsonLogicEvaluator.kt) has it.
    """
    if dialect(env) is not None:
        return rules.holds_as_original(rule, data)
    return bool(rules.evaluate(rule, data))


def note_completed(env: Env, state: State, node_id: str, switch: dict | None = None) -> None:
    """Remember that a forward node completed (a switch with the choice it made), where the original's
    templates read the order nodes completed in (``prev``, ``steps``, ``step.<index>``)."""
    if dialect(env) is None:
        return
    state.setdefault("trail", []).append(node_id)
    if switch is not None:
        state["results"][node_id] = {"switch": switch}


class Masked(dict):
    """Secrets as seen by anything that is stored: every name reads as '***'."""

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: str) -> str:
        return "***"

    def get(self, key: str, default: Any = None) -> str:
        return "***"


MASKED = Masked()
