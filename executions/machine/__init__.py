"""The execution state machine: state + event -> new state + actions. Pure.

No ORM, no HTTP, no clock of its own: the caller (executions/services/)
passes ``now`` and applies what comes back. The state is a JSON dict stored on
the execution row; see ``new_state`` for its keys.

The machine walks the normalized graph (docs/normalized-spec.md). It moves
through switch, sleep-that-is-over, succeed and fail nodes by itself and stops
at the first thing that needs the outside world: an HTTP call (``Call``), an
async call followed by a wait (``SendAsync``), or a pause (status SLEEPING or
WAITING with a ``due_at``). Every node attempt becomes a step record.

The package: ``model`` (vocabulary), ``handlers`` (``decide``), ``flow`` (walking the
graph), ``steps`` (history records), ``queries`` (what the
services may ask of a stored state). Import from here.
"""

from executions.choices import FINAL_STATUSES, ExecutionStatus, Phase, StepStatus
from executions.machine.flow import backoff_seconds
from executions.machine.handlers import decide
from executions.machine.model import (
    ASYNC_ACK_GRACE_S,
    JOIN_RECHECK,
    MASKED,
    MAX_HOPS_PER_DECISION,
    NOTIFY_ON,
    AsyncAccepted,
    BranchFinished,
    Call,
    CallbackArrived,
    CallFailed,
    CallSucceeded,
    Cancel,
    CancelBranches,
    Decision,
    Env,
    Event,
    EventRejected,
    Fork,
    Heartbeat,
    Resume,
    Retry,
    RetryBranches,
    SendAsync,
    State,
    StepRecord,
    Wake,
    branch_state,
    copy_json,
    new_state,
    render,
    template_data,
)
from executions.machine.original import callback_rule_data
from executions.machine.queries import (
    answer_pending,
    awaited_callback,
    branch_finished,
    failed_in_compensation,
    left_to_a_branch,
    wait_deadline,
    waits_for,
)

__all__ = [
    "ASYNC_ACK_GRACE_S",
    "FINAL_STATUSES",
    "JOIN_RECHECK",
    "MASKED",
    "MAX_HOPS_PER_DECISION",
    "NOTIFY_ON",
    "AsyncAccepted",
    "BranchFinished",
    "Call",
    "CallFailed",
    "CallSucceeded",
    "CallbackArrived",
    "Cancel",
    "CancelBranches",
    "Decision",
    "Env",
    "Event",
    "EventRejected",
    "ExecutionStatus",
    "Fork",
    "Heartbeat",
    "Phase",
    "Resume",
    "Retry",
    "RetryBranches",
    "SendAsync",
    "State",
    "StepRecord",
    "StepStatus",
    "Wake",
    "answer_pending",
    "awaited_callback",
    "backoff_seconds",
    "branch_finished",
    "branch_state",
    "callback_rule_data",
    "copy_json",
    "decide",
    "failed_in_compensation",
    "left_to_a_branch",
    "new_state",
    "render",
    "template_data",
    "wait_deadline",
    "waits_for",
]
