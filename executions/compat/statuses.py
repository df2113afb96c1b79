"""Our execution statuses as the original names them (``SagaRepository.kt``, ``WorkflowExecutor.kt``).

The original knows IN_PROGRESS, WAITING_CALLBACK, SLEEPING and the final SUCCEEDED, FAILED
(failed, compensations done) and CORRUPTED (a compensation failed for good). Its clients poll
until one of the three final names, so every final status of ours maps to one of them.
"""

from __future__ import annotations

from django.db.models import Q

from executions.models import Execution, ExecutionStatus

IN_PROGRESS, WAITING_CALLBACK, SLEEPING = "IN_PROGRESS", "WAITING_CALLBACK", "SLEEPING"
SUCCEEDED, FAILED, CORRUPTED = "SUCCEEDED", "FAILED", "CORRUPTED"
ORIGINAL_STATUSES = (IN_PROGRESS, WAITING_CALLBACK, SLEEPING, SUCCEEDED, FAILED, CORRUPTED)

# A retry back-off is SLEEPING for us and IN_PROGRESS for the original (it re-enqueues with a delay);
# only a sleep node is SLEEPING there. state["sleep"]["kind"] tells them apart.
_SLEEP_NODE = Q(status=ExecutionStatus.SLEEPING, state__sleep__kind="node")
_NOT_SLEEP_NODE = Q(status=ExecutionStatus.SLEEPING) & (Q(state__sleep__kind__isnull=True) | ~_SLEEP_NODE)
# A FAILED execution of ours whose error arose while compensating: the original's CORRUPTED.
_COMPENSATION_FAILED = Q(status=ExecutionStatus.FAILED, error__phase="compensation")
# A missing key is NULL in SQL, which a bare negation would not match.
_OTHER_FAILURE = Q(status=ExecutionStatus.FAILED) & (Q(error__phase__isnull=True) | ~_COMPENSATION_FAILED)
_FILTERS = {
    IN_PROGRESS: Q(status__in=[ExecutionStatus.PENDING, ExecutionStatus.RUNNING, ExecutionStatus.COMPENSATING])
    | _NOT_SLEEP_NODE,
    WAITING_CALLBACK: Q(status=ExecutionStatus.WAITING),
    SLEEPING: _SLEEP_NODE,
    SUCCEEDED: Q(status=ExecutionStatus.SUCCEEDED),
    FAILED: Q(status__in=[ExecutionStatus.COMPENSATED, ExecutionStatus.CANCELLED]) | _OTHER_FAILURE,
    CORRUPTED: _COMPENSATION_FAILED,
}


def original_status(execution: Execution) -> str:
    """The name the original gives ``execution``'s status (docs/upstream.md, "Statuses")."""
    status = execution.status
    if status == ExecutionStatus.SLEEPING:
        return SLEEPING if (execution.state.get("sleep") or {}).get("kind") == "node" else IN_PROGRESS
    if status == ExecutionStatus.FAILED:
        return CORRUPTED if (execution.error or {}).get("phase") == "compensation" else FAILED
    if status in (ExecutionStatus.COMPENSATED, ExecutionStatus.CANCELLED):
        return FAILED
    if status == ExecutionStatus.WAITING:
        return WAITING_CALLBACK
    return SUCCEEDED if status == ExecutionStatus.SUCCEEDED else IN_PROGRESS


def status_filter(name: str) -> Q:
    """The executions the original would list under status ``name``; KeyError for a name it does not have."""
    return _FILTERS[name]
