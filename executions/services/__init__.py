"""The one write path of executions: every status change goes through here.

Workers call ``advance_execution``; the API calls ``start_requested``,
``cancel_execution``, ``retry_execution``, ``wake_execution``, ``rerun_execution``
and ``complete_callback`` (the operator's actions, which the UI pages and the admin
call too, each recording an OperatorAction); the callback receiver calls
``deliver_callback``. Each one asks the pure state machine
(executions/machine/) what to do and applies the answer with a write fenced
on ``Execution.fence``.

Modules: ``starting``, ``worker`` (claim and advance), ``external`` (cancel, retry,
wake, callbacks, parallel branches), ``calls`` (HTTP glue), ``records`` (the writes),
``timers``. Import from here.
"""

from executions.secrets import configured_secrets  # its home is executions.secrets; kept here for callers
from executions.services.calls import env_for
from executions.services.external import (
    cancel_execution,
    complete_callback,
    deliver_callback,
    record_heartbeat,
    retry_execution,
    wake_execution,
)
from executions.services.records import Trace, TransitionRefused, enqueue
from executions.services.starting import (
    IdempotencyConflict,
    find_replayed_start,
    request_digest,
    rerun_execution,
    start_execution,
    start_requested,
)
from executions.services.timers import enqueue_due_executions
from executions.services.worker import RUN_BUDGET_S, advance_execution, claim_execution

__all__ = [
    "RUN_BUDGET_S",
    "IdempotencyConflict",
    "Trace",
    "TransitionRefused",
    "advance_execution",
    "cancel_execution",
    "claim_execution",
    "complete_callback",
    "configured_secrets",
    "deliver_callback",
    "enqueue",
    "enqueue_due_executions",
    "env_for",
    "find_replayed_start",
    "record_heartbeat",
    "request_digest",
    "rerun_execution",
    "retry_execution",
    "start_execution",
    "start_requested",
    "wake_execution",
]
