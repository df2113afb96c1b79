"""django-q2 task entry points. Tasks take ids, reload, re-check: delivery is at least once."""

from executions.inflight import in_flight


def advance(execution_id: str) -> None:
    """Hand the execution to one of this process's threads (blocks while they are all busy)."""
    in_flight().submit(execution_id)
