"""The worker side: claim an execution, then decide, call and commit, step after step, under a fence."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import Case, F, Value, When
from django.db.models.functions import Coalesce, Now

from definitions.services import definition_by_id
from definitions.upstream import is_upstream
from executions import machine, telemetry
from executions.callback_tokens import callback_context, mint_callback_token
from executions.models import ACTIVE_STATUSES, FINAL_STATUSES, Execution, ExecutionStatus
from executions.perform import perform, perform_call, render_call
from executions.secrets import configured_secrets
from executions.services.calls import HttpTransport, env_for
from executions.services.external import carry_out_branch_actions
from executions.services.records import (
    enqueue,
    logger,
    release_connection,
    state_fields,
    write_fenced,
    write_steps,
)

# A worker stops walking after this long and re-enqueues the execution, so one
# long chain never hits django-q's task timeout and other executions get a turn.
RUN_BUDGET_S = 30.0


def claim_execution(execution_id) -> Execution | None:
    """Take the execution if it is due and nobody holds a live lease on it.

    The conditional UPDATE is the lock: of two workers, one changes the row and
    the other sees 0 rows. Bumping ``fence`` makes every write of the previous
    holder (a worker paused past its lease) fail from now on. On PostgreSQL the
    claim and the read of the row are one statement (UPDATE ... RETURNING). The execution carries
    ``db_now`` (the claim's database time) and ``due_before`` (the due time the claim replaced).
    """
    if connection.vendor == "postgresql":
        lease_s = settings.TRAMA_LEASE_SECONDS
        claimed = list(Execution.objects.raw(_CLAIM_SQL, [lease_s, lease_s, str(execution_id)]))
        execution = claimed[0] if claimed else None
    else:
        execution = _claim_with_orm(execution_id)
    if execution is not None:
        execution.definition = definition_by_id(execution.definition_id)
    return execution


_ACTIVE = ", ".join(f"'{status}'" for status in sorted(ACTIVE_STATUSES))
# The claim moves due_at to the lease's end; ``due_before`` is the due time it replaces (when the step
# became due: a start, a sleep's end, a back-off's end, a lapsed lease), which RETURNING alone cannot
# see. The self-join reads it under FOR UPDATE, so it is the row's latest value, not an older snapshot's.
_CLAIM_SQL = f"""
    UPDATE executions_execution AS e
    SET fence = e.fence + 1,
        lease_until = STATEMENT_TIMESTAMP() + make_interval(secs => %s),
        due_at = STATEMENT_TIMESTAMP() + make_interval(secs => %s),
        status = CASE WHEN e.status = 'PENDING' THEN 'RUNNING' ELSE e.status END,
        started_at = COALESCE(e.started_at, STATEMENT_TIMESTAMP())
    FROM (SELECT id, due_at FROM executions_execution WHERE id = %s FOR UPDATE) AS before
    WHERE e.id = before.id AND e.status IN ({_ACTIVE}) AND e.due_at <= STATEMENT_TIMESTAMP()
    RETURNING e.*, before.due_at AS due_before, STATEMENT_TIMESTAMP() AS db_now
"""


def _claim_with_orm(execution_id) -> Execution | None:
    """The same claim in three statements, for SQLite (the embedded default; it runs one writer at a time)."""
    lease = timedelta(seconds=settings.TRAMA_LEASE_SECONDS)
    due_before = Execution.objects.filter(pk=execution_id).values_list("due_at", flat=True).first()
    won = Execution.objects.filter(pk=execution_id, status__in=ACTIVE_STATUSES, due_at__lte=Now()).update(
        fence=F("fence") + 1,
        lease_until=Now() + lease,
        due_at=Now() + lease,
        status=Case(When(status=ExecutionStatus.PENDING, then=Value(ExecutionStatus.RUNNING)), default=F("status")),
        started_at=Coalesce(F("started_at"), Now()),
    )
    if not won:
        return None
    execution = Execution.objects.annotate(db_now=Now()).get(pk=execution_id)
    execution.due_before = due_before
    return execution


def advance_execution(execution_id) -> None:
    """Worker entry point: claim, then walk the execution until it must pause."""
    claimed_at = time.monotonic()  # before the claim: the lease can only end later than this says
    execution = claim_execution(execution_id)
    if execution is not None:
        telemetry.claimed(execution)
        _Run(execution, claimed_at).run()


class _Run:
    """One claim of one execution by one worker: decide, call, commit, repeat."""

    def __init__(self, execution: Execution, claimed_at: float):
        self.execution = execution
        self.fence = execution.fence
        # All times derive from the database clock read at claim time.
        self._db_now, self._mono = execution.db_now, time.monotonic()
        self._deadline = self._mono + RUN_BUDGET_S
        self._lease_end = claimed_at + settings.TRAMA_LEASE_SECONDS  # monotonic; moved by every holding write

    def now(self) -> datetime:
        return self._db_now + timedelta(seconds=time.monotonic() - self._mono)

    def env(self) -> machine.Env:
        return env_for(self.execution, self.now())

    def run(self) -> None:
        inbox = _inbox_events(self.execution.pending_callback, self.execution.cancel_request)
        if inbox:
            # Events left for the previous holder, which died before its next write.
            decision = machine.Decision(self.execution.state)
            for event in inbox:
                decision = self._merge(decision, event)
            self._commit(decision, hold=False, clear_inbox=True)
            return
        decision = self._decide(self.execution.state or machine.new_state(), machine.Resume())
        while decision is not None:
            decision = self._step(decision)

    def _step(self, decision: machine.Decision) -> machine.Decision | None:
        """Carry out one decision; returns the next one, or None when this claim is over."""
        call = decision.call
        if isinstance(call, machine.Call) and time.monotonic() > self._deadline:
            # Out of budget: hand the execution back to the queue before the next call.
            self._commit(decision, hold=False)
            return None
        if isinstance(call, machine.Call):
            changed = decision.steps or decision.status != self.execution.status or not self._lease_covers(call)
            if changed and not self._commit(decision, hold=True):
                return None
            return self._perform_call(decision, call)
        if isinstance(call, machine.SendAsync):
            return self._perform_async(decision, call)
        due_now = decision.due_at is not None and decision.due_at <= self.now()
        if due_now and decision.status not in FINAL_STATUSES and time.monotonic() < self._deadline:
            if decision.steps and not self._commit(decision, hold=True):
                return None
            return self._decide(decision.state, machine.Resume())
        self._commit(decision, hold=False)
        return None

    def _lease_covers(self, call: machine.Call) -> bool:
        """Whether the claim's lease outlasts this call with half the lease to spare (else a commit extends it)."""
        timeout = float(call.request.get("timeout_s") or settings.TRAMA_DEFAULT_REQUEST_TIMEOUT)
        return time.monotonic() - self._mono + timeout <= settings.TRAMA_LEASE_SECONDS / 2

    def _decide(self, state: dict, event: machine.Event) -> machine.Decision | None:
        try:
            return machine.decide(self.env(), state, event)
        except machine.EventRejected as exc:
            logger.info("event rejected: %s", exc, extra={"execution_id": str(self.execution.pk)})
            return None

    def _merge(self, decision: machine.Decision, event: machine.Event) -> machine.Decision:
        """Apply ``event`` on top of an uncommitted decision, keeping its step records."""
        following = self._decide(decision.state, event)
        if following is None:
            return decision
        following.actions = decision.steps + following.actions
        return following

    def _perform_call(self, decision: machine.Decision, call: machine.Call) -> machine.Decision | None:
        if not self._may_send(call):
            return None
        event = perform_call(call, decision.state, self.env(), configured_secrets(), HttpTransport(self.execution))
        return self._decide(decision.state, event)

    def _may_send(self, call: machine.Call | machine.SendAsync) -> bool:
        """Whether this claim's lease still covers the whole call; else the call is dropped.

        The lease end is kept on the monotonic clock, which keeps running while
        the process is paused (SIGSTOP, a stalled VM): a worker resumed after
        its lease ended must not send a call its successor may already have
        sent. The successor sends it again, with the same Idempotency-Key.
        """
        release_connection()
        timeout = float(call.request.get("timeout_s") or settings.TRAMA_DEFAULT_REQUEST_TIMEOUT)
        if time.monotonic() + timeout < self._lease_end:
            return True
        logger.warning("lease too short for the next call: not sending it", extra=self._log_extra())
        return False

    def _perform_async(self, decision: machine.Decision, call: machine.SendAsync) -> machine.Decision | None:
        # Render first: a template error fails the attempt without any wait being committed.
        token = mint_callback_token(self.execution.pk, call.node, call.attempt, call.deadline)
        # A definition in the original Trama's format: its services call back on the original's route.
        original = (str(self.execution.pk), call.node) if is_upstream(self.execution.definition.source) else None
        callback = callback_context(token, original)
        rendered = render_call(call, decision.state, self.env(), configured_secrets(), callback)
        if isinstance(rendered, machine.CallFailed):
            return self._decide(decision.state, rendered)
        decision.actions.append(machine.StepRecord(call.seq, {"request": rendered.recorded}, new=False))
        # WAITING is durable before the request leaves. The lease stays: a callback that beats
        # the answer is parked in pending_callback and folded in by the commit below.
        if not self._commit(decision, hold=True):
            return None
        if not self._may_send(call):
            return None
        event = perform(call, rendered, HttpTransport(self.execution))
        following = self._decide(decision.state, event)
        if following is None:
            return None
        if isinstance(event, machine.AsyncAccepted):
            self._commit(following, hold=False)
            return None
        return following

    def _commit(self, decision: machine.Decision, hold: bool, clear_inbox: bool = False) -> bool:
        """Write the decision if this worker still owns the execution; True if the worker may go on.

        ``hold`` keeps the lease (the worker goes on); otherwise the execution
        is released with its ``due_at``. A cancel or an early callback that
        arrived meanwhile (the inbox) makes the write miss: it is folded in,
        written, and the worker stops.

        If the database connection drops, the write is retried on a new
        connection while the lease lasts: giving the execution up instead would
        make the next worker send the call that just succeeded once more.
        """
        pause = 0.25
        while True:
            try:
                return self._write(decision, hold, clear_inbox)
            except (OperationalError, InterfaceError) as exc:
                if time.monotonic() + pause >= self._lease_end - 1.0:
                    logger.error("database unreachable until the lease ended: %s", exc, extra=self._log_extra())
                    return False
                logger.warning("database error, retrying the write: %s", exc, extra=self._log_extra())
                telemetry.worker_event("db_write_retries")
                connection.close()
                time.sleep(pause)
                pause = min(pause * 2, 2.0)

    def _write(self, decision: machine.Decision, hold: bool, clear_inbox: bool) -> bool:
        fields = self._fields(decision, hold)
        query = Execution.objects.filter(pk=self.execution.pk, fence=self.fence)
        if clear_inbox:
            fields |= {"cancel_request": None, "pending_callback": None}
        else:
            query = query.filter(cancel_request__isnull=True, pending_callback__isnull=True)
        wake = not hold and fields["due_at"] is not None and fields["due_at"] <= self.now()
        if wake:
            fields["nudged_at"] = fields["due_at"]  # enqueued below: the timer loop need not do it again
        if self._won_write(decision, query, fields, guard_inbox=not clear_inbox):
            if wake:
                enqueue(self.execution.pk)
            telemetry.committed(self.execution, decision, fields)
            # What the next write replaces (telemetry reads the state a write ends: a pause, an open step).
            self.execution.status, self.execution.state = decision.status, decision.state
            decision.actions = [a for a in decision.actions if isinstance(a, machine.Call | machine.SendAsync)]
            return True
        inbox = Execution.objects.filter(pk=self.execution.pk, fence=self.fence).values_list(
            "pending_callback", "cancel_request"
        )
        events = _inbox_events(*inbox[0]) if inbox else []
        if not events:
            logger.warning("lost the execution to another worker", extra=self._log_extra())
            telemetry.worker_event("fence_conflicts")
            return False
        for event in events:
            decision = self._merge(decision, event)
        self._commit(decision, hold=False, clear_inbox=True)
        return False

    def _won_write(self, decision: machine.Decision, query, fields: dict, guard_inbox: bool) -> bool:
        """Apply the fenced write; True if it won. One statement on PostgreSQL unless branches are touched."""
        branch_actions = machine.Fork | machine.CancelBranches | machine.RetryBranches
        touches_other_rows = any(isinstance(a, branch_actions) for a in decision.actions) or (
            decision.status in FINAL_STATUSES and self.execution.parent_id
        )
        if connection.vendor == "postgresql" and not touches_other_rows:
            return write_fenced(self.execution.pk, self.fence, fields, decision.steps, guard_inbox)
        with transaction.atomic():
            if not query.update(**fields):
                return False
            write_steps(self.execution, decision.steps)
            carry_out_branch_actions(self.execution, decision)
            return True

    def _fields(self, decision: machine.Decision, hold: bool) -> dict:
        now = self.now()
        fields = state_fields(decision, now)
        if hold:
            seconds = _lease_seconds(decision)
            lease = now + timedelta(seconds=seconds)
            fields |= {"lease_until": lease, "due_at": lease}
            self._lease_end = time.monotonic() + seconds
        else:
            fields["lease_until"] = None
            if fields["due_at"] is None and decision.status not in FINAL_STATUSES:
                fields["due_at"] = now  # never leave an active execution without a next look
        return fields

    def _log_extra(self) -> dict:
        return {"execution_id": str(self.execution.pk), "fence": self.fence}


def _inbox_events(pending_callback: dict | None, cancel_request: dict | None) -> list[machine.Event]:
    """Events parked on the row for the lease holder, in the order they apply."""
    events: list[machine.Event] = []
    if pending_callback:
        events.append(machine.CallbackArrived(**pending_callback))
    if cancel_request:
        # The holder's decision is not written yet: a cancel accepted before it overrules a success.
        events.append(machine.Cancel(compensate=cancel_request["compensate"], overrule_success=True))
    return events


def _lease_seconds(decision: machine.Decision) -> float:
    call = decision.call
    return _lease_seconds_for(call) if call else settings.TRAMA_LEASE_SECONDS


def _lease_seconds_for(call: machine.Call | machine.SendAsync) -> float:
    """A lease outlasts the call's timeout by TRAMA_LEASE_SECONDS, the time a dead worker is waited for."""
    return float(call.request.get("timeout_s") or settings.TRAMA_DEFAULT_REQUEST_TIMEOUT) + settings.TRAMA_LEASE_SECONDS
