"""The state machine's vocabulary: events, actions, the decision, the state and Env (statuses: executions.choices)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from executions.choices import ExecutionStatus, Phase

# Which ``notify`` request an outcome sends (CANCELLED sends none: somebody asked for it).
NOTIFY_ON = {
    ExecutionStatus.SUCCEEDED: "succeeded",
    ExecutionStatus.FAILED: "failed",
    ExecutionStatus.COMPENSATED: "failed",
}
# A switch loop that never reaches a call would spin forever inside one decide().
MAX_HOPS_PER_DECISION = 1000
# A parent waiting on its branches is woken by their BranchFinished events; this is only a safety re-check.
JOIN_RECHECK = timedelta(hours=1)
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


def new_state() -> dict:
    return {
        "status": ExecutionStatus.PENDING,
        "node": None,  # current node id
        "phase": Phase.FORWARD,
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


class Masked(dict):
    """Secrets as seen by anything that is stored: every name reads as '***'."""

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: str) -> str:
        return "***"

    def get(self, key: str, default: Any = None) -> str:
        return "***"


MASKED = Masked()
