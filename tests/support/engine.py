"""Drive executions in-process with the real worker code, and read what they did.

``drive`` runs executions.services.advance_execution in the test process, in a
loop, the way the timer loop and queue would.
"""

import time

from django.utils import timezone

from executions.models import FINAL_STATUSES, Execution
from executions.services import advance_execution


def drive(execution: Execution, timeout: float = 15.0, until: set[str] | None = None) -> Execution:
    """Advance until final (or a status in ``until``), honouring due times like the timer loop."""
    stop = until or set(FINAL_STATUSES)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        execution.refresh_from_db()
        if execution.status in stop:
            return execution
        if execution.due_at is not None and execution.due_at <= timezone.now():
            advance_execution(execution.pk)
        else:
            time.sleep(0.01)
    raise AssertionError(f"execution stuck in {execution.status} (state {execution.state})")


def history(execution: Execution) -> list[tuple[str, str, int, str]]:
    """The execution's steps as (node_id, phase, attempt, status), in order."""
    return list(execution.steps.order_by("seq").values_list("node_id", "phase", "attempt", "status"))


def idempotency_keys(requests: list) -> list[str | None]:
    """The Idempotency-Key header of each recorded request (tests.support.Recorded)."""
    return [r.header("Idempotency-Key") for r in requests]
