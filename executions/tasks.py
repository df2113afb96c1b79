"""django-q2 task entry points. Tasks take ids, reload, re-check: delivery is at least once."""

from executions.services import advance_execution


def advance(execution_id: str) -> None:
    advance_execution(execution_id)
