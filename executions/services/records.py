"""Writing what a decision says: the execution's columns, its step rows, and the wake-up after commit."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone
from django_q.brokers import Broker, get_broker
from django_q.brokers.orm import ORM
from django_q.tasks import async_task
from psycopg.types.json import Jsonb

from executions import machine
from executions.models import FINAL_STATUSES, Execution, ExecutionStatus, OperatorAction, Step

logger = logging.getLogger("trama.executions")


class TransitionRefused(Exception):
    """The execution is not in a state that allows this (answer 409)."""


@dataclass(frozen=True)
class Trace:
    """An operator's action, to record on the execution it acted on (``record``, inside that transaction)."""

    kind: str
    by: str
    detail: dict = field(default_factory=dict)

    def record(self, execution: Execution) -> OperatorAction:
        """Call inside the transaction that applies the action, so the trace commits with it (or not at all).

        ``at`` is the database's clock when the row was locked (``db_now``), the clock the steps are written with.
        """
        at = getattr(execution, "db_now", None) or timezone.now()
        fields = {"kind": self.kind, "actor": self.by, "at": at, "detail": self.detail}
        return OperatorAction.objects.create(execution=execution, **fields)


# Wake-ups per queue task: the timer loop makes hundreds of executions due at once, and one task
# per execution would cost a pickled, signed message (and a queue round trip) each.
WAKE_BATCH = 32


def enqueue(*execution_ids) -> None:
    """Wake workers for these executions once the current transaction commits (never before).

    One queue task carries up to WAKE_BATCH ids; the worker process that takes
    it hands each to one of its threads. With the ORM broker the task rows are
    written inside the transaction: they become visible together with the
    change, in one commit instead of two.
    """
    broker = queue_broker()
    ids = [str(execution_id) for execution_id in execution_ids]

    def wake() -> None:
        for start in range(0, len(ids), WAKE_BATCH):
            async_task("executions.tasks.advance", *ids[start : start + WAKE_BATCH], save=False, broker=broker)

    if connection.in_atomic_block and isinstance(broker, ORM):
        wake()
    else:
        transaction.on_commit(wake)


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


# Final statuses no operator action resumes: their template data (a copy of every response,
# already stored in the steps) is dropped from the state they are written with.
_SETTLED = FINAL_STATUSES - {ExecutionStatus.FAILED}


def _drops_results(state: dict, status: str) -> bool:
    """A branch that succeeded keeps them: a branch retried on its own while its parent was FAILED
    hands them over when the parent is retried (services.external._report_again)."""
    return status in _SETTLED and not (state.get("branch") and status == ExecutionStatus.SUCCEEDED)


def state_fields(decision: machine.Decision, now: datetime) -> dict:
    state = decision.state
    final = decision.status in FINAL_STATUSES
    if state.get("results") and _drops_results(state, decision.status):
        state = state | {"results": {}}
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


# Columns written as jsonb; None stays SQL NULL, as Django's JSONField(null=True) stores it.
_JSON_COLUMNS = {
    "state", "output", "error", "cancel_request", "pending_callback",
    "request", "response_headers", "response_body", "detail",
}  # fmt: skip
_STEP_COLUMNS = [f.column for f in Step._meta.concrete_fields if f.column not in ("id", "execution_id")]
_STEP_DEFAULTS = {f.column: f.get_default() for f in Step._meta.concrete_fields}


def write_fenced(execution_id, fence: int, fields: dict, records: list[machine.StepRecord], guard_inbox: bool) -> bool:
    """One statement: set ``fields`` on the execution if it still carries ``fence`` (and, with
    ``guard_inbox``, has nothing parked for its holder), and write its steps only if it did.

    PostgreSQL only (data-modifying WITH). A single statement is atomic on its
    own: no BEGIN/COMMIT round trips, and no ORM compilation on the per-step path.
    """
    params: list = []
    sets = ", ".join(f"{column} = %s" for column in fields)
    params += [_adapt(column, value) for column, value in fields.items()]
    inbox = " AND cancel_request IS NULL AND pending_callback IS NULL" if guard_inbox else ""
    ctes = [f"won AS (UPDATE executions_execution SET {sets} WHERE id = %s AND fence = %s{inbox} RETURNING id)"]
    params += [execution_id, fence]
    for n, (seq, new, step) in enumerate(_collapse(records)):
        if new:
            row = _STEP_DEFAULTS | step
            columns = ", ".join(_STEP_COLUMNS)
            values = ", ".join(["%s"] * len(_STEP_COLUMNS))
            ctes.append(f"s{n} AS (INSERT INTO executions_step (execution_id, {columns}) SELECT id, {values} FROM won)")
            params += [_adapt(c, row[c]) for c in _STEP_COLUMNS]
        else:
            sets = ", ".join(f"{column} = %s" for column in step)
            where = "execution_id = (SELECT id FROM won) AND seq = %s"
            ctes.append(f"s{n} AS (UPDATE executions_step SET {sets} WHERE {where})")
            params += [*(_adapt(c, v) for c, v in step.items()), seq]
    with connection.cursor() as cursor:
        cursor.execute(f"WITH {', '.join(ctes)} SELECT count(*) FROM won", params)
        return cursor.fetchone()[0] == 1


def _collapse(records: list[machine.StepRecord]) -> list[tuple[int, bool, dict]]:
    """One (seq, new, fields) per step row, later records merged into earlier ones.

    Parts of one statement do not see each other's rows, and may not change
    one row twice: an insert and an update of the same step become one insert.
    """
    rows: dict[int, tuple[bool, dict]] = {}
    for record in records:
        new, fields = rows.get(record.seq, (record.new, {"seq": record.seq} if record.new else {}))
        rows[record.seq] = (new, fields | _step_fields(record.fields))
    return [(seq, new, fields) for seq, (new, fields) in rows.items()]


def _adapt(column: str, value):
    return Jsonb(value) if column in _JSON_COLUMNS and value is not None else value


def _step_fields(fields: dict) -> dict:
    out = dict(fields)
    for key in ("started_at", "finished_at"):
        if isinstance(out.get(key), str):
            out[key] = datetime.fromisoformat(out[key])
    return out
