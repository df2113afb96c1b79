"""Writing what a decision says: the execution's columns, its step rows, and the wake-up after commit."""

from __future__ import annotations

import logging
import os
from datetime import datetime

from django.db import connection, transaction
from django_q.brokers import Broker, get_broker
from django_q.tasks import async_task

from executions import machine
from executions.models import FINAL_STATUSES, Execution, Step

logger = logging.getLogger("trama.executions")


class TransitionRefused(Exception):
    """The execution is not in a state that allows this (answer 409)."""


def enqueue(execution_id) -> None:
    """Wake a worker for this execution once the current transaction commits (never before)."""
    transaction.on_commit(
        lambda: async_task("executions.tasks.advance", str(execution_id), save=False, broker=queue_broker())
    )


_broker: tuple[int, Broker] | None = None


def queue_broker() -> Broker:
    """This process's django-q broker (django-q makes a new one, a new Redis client, per call otherwise)."""
    global _broker
    if _broker is None or _broker[0] != os.getpid():  # a forked child needs its own Redis connection
        _broker = (os.getpid(), get_broker())
    return _broker[1]


def release_connection() -> None:
    """Give this thread's database connection back to the pool: a call in flight holds none.

    Without a pool (SQLite) the connection stays: reopening it would cost more than it frees.
    """
    if getattr(connection, "pool", None) is not None and not connection.in_atomic_block:
        connection.close()


def state_fields(decision: machine.Decision, now: datetime) -> dict:
    state = decision.state
    final = decision.status in FINAL_STATUSES
    return {
        "state": state,
        "status": decision.status,
        "current_node": state["node"],
        "output": state["output"],
        "error": state["error"],
        "due_at": None if final else decision.due_at,
        "finished_at": now if final else None,
        "updated_at": now,
    }


def write_steps(execution: Execution, records: list[machine.StepRecord]) -> None:
    new = [Step(execution=execution, seq=r.seq, **_step_fields(r.fields)) for r in records if r.new]
    if new:
        Step.objects.bulk_create(new)
    for record in records:
        if not record.new:
            Step.objects.filter(execution=execution, seq=record.seq).update(**_step_fields(record.fields))


def _step_fields(fields: dict) -> dict:
    out = dict(fields)
    for key in ("started_at", "finished_at"):
        if isinstance(out.get(key), str):
            out[key] = datetime.fromisoformat(out[key])
    return out
