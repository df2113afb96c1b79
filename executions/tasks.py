"""django-q2 task entry points. Tasks take ids, reload, re-check: delivery is at least once."""

from executions.inflight import in_flight


def advance(*execution_ids: str) -> None:
    """Hand each execution to one of this process's threads (blocks while they are all busy)."""
    for execution_id in execution_ids:
        in_flight().submit(execution_id)
