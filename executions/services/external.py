"""Events from outside a worker (cancel, retry, wake, callbacks, parallel branches), applied under the row lock."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.db.models import F
from django.db.models.functions import Now
from django.utils import timezone

from executions import machine, telemetry
from executions.models import FINAL_STATUSES, Execution, OperatorActionKind
from executions.secrets import scrub_secrets
from executions.services.calls import env_for
from executions.services.records import Trace, TransitionRefused, enqueue, logger, state_fields, write_steps


def _apply_external(execution_id, event: machine.Event, trace: Trace | None = None) -> Execution:
    """Apply an event that does not come from a worker's own call, under the row lock.

    The fence is bumped so a worker that claimed the row meanwhile cannot
    overwrite the result. Raises TransitionRefused when the machine rejects the
    event, or when a worker holds a live lease. ``trace``, when given, is
    recorded as an OperatorAction in the same transaction.
    """
    with transaction.atomic():
        execution = _lock(execution_id)
        if _leased(execution):
            raise TransitionRefused("a worker is in the middle of a step; try again")
        _apply_locked(execution, event)
        if trace is not None:
            trace.record(execution)
    execution.refresh_from_db()
    return execution


def _lock(execution_id) -> Execution:
    return (
        Execution.objects.select_for_update().select_related("definition").annotate(db_now=Now()).get(pk=execution_id)
    )


def _leased(execution: Execution) -> bool:
    return execution.lease_until is not None and execution.lease_until > execution.db_now


def _apply_locked(execution: Execution, event: machine.Event) -> None:
    """Call while holding the row lock (``_lock``) inside transaction.atomic()."""
    now = execution.db_now
    try:
        decision = machine.decide(env_for(execution, now), execution.state, event)
    except machine.EventRejected as exc:
        raise TransitionRefused(str(exc)) from None
    fields = state_fields(decision, now) | {"fence": F("fence") + 1, "lease_until": None}
    if decision.status in FINAL_STATUSES:
        fields["cancel_request"] = None
    wake = fields["due_at"] is not None and fields["due_at"] <= now
    if wake:
        fields["nudged_at"] = now  # enqueued below: the timer loop need not do it again
    Execution.objects.filter(pk=execution.pk).update(**fields)
    write_steps(execution, decision.steps)
    carry_out_branch_actions(execution, decision)
    telemetry.committed(execution, decision, fields)
    if wake:
        enqueue(execution.pk)


def carry_out_branch_actions(execution: Execution, decision: machine.Decision) -> None:
    """Call inside the transaction that wrote ``decision``: forks, sibling cancels, and the join report."""
    for action in decision.actions:
        if isinstance(action, machine.Fork):
            _spawn_branches(execution, decision.state, action)
        elif isinstance(action, machine.CancelBranches):
            # After commit and outside this row's lock: each branch takes its own lock, then ours.
            transaction.on_commit(lambda a=action: _cancel_branches(execution.pk, a))
        elif isinstance(action, machine.RetryBranches):
            transaction.on_commit(lambda a=action: _retry_branches(execution.pk, a))  # the same lock order
    if decision.status in FINAL_STATUSES and execution.parent_id:
        _report_to_parent(execution, decision.state)


def _spawn_branches(parent: Execution, state: dict, fork: machine.Fork) -> None:
    now = timezone.now()
    branches = [
        Execution(
            definition_id=parent.definition_id,
            parent=parent,
            branch=head,
            input=parent.input,
            state=machine.branch_state(state, head),
            due_at=now,
            nudged_at=now,  # enqueued below
            created_by=parent.created_by,
            trace_parent=telemetry.branch_traceparent(parent),  # the branch's spans join the parent's trace
        )
        for head in fork.branches
    ]
    for branch in Execution.objects.bulk_create(branches):
        enqueue(branch.pk)


def _report_to_parent(branch: Execution, state: dict) -> None:
    """A branch ended: tell its parent, under the parent's lock (branch lock first, then parent: one order)."""
    parent = _lock(branch.parent_id)
    event = machine.branch_finished(branch.branch, state, parent.state)
    try:
        _apply_locked(parent, event)
    except TransitionRefused:
        logger.info("parent no longer waits for branch %s", branch.branch, extra={"execution_id": str(parent.pk)})


def _cancel_branches(parent_id, action: machine.CancelBranches) -> None:
    for branch in Execution.objects.filter(parent_id=parent_id, branch__in=action.branches):
        # One that ended on its own meanwhile refuses; its report reaches the parent anyway.
        with contextlib.suppress(TransitionRefused):
            cancel_execution(branch.pk, compensate=action.compensate)


def _retry_branches(parent_id, action: machine.RetryBranches) -> None:
    """The parent's retry committed, waiting for these branches again: retry each from its failed step.

    A branch an operator already retried on its own refuses; if it has ended since, its report then
    found the parent final and was dropped, so it reports now (a running one reports when it ends).
    """
    for branch in Execution.objects.filter(parent_id=parent_id, branch__in=action.branches):
        try:
            retry_execution(branch.pk)
        except TransitionRefused:
            _report_again(branch.pk)


def _report_again(branch_id) -> None:
    with transaction.atomic():
        branch = _lock(branch_id)
        if branch.status in FINAL_STATUSES:
            _report_to_parent(branch, branch.state)


def cancel_execution(execution_id, compensate: bool = True, by: str = "") -> Execution:
    """Cancel now; or, if a worker is in the middle of a step, leave a request that its next write folds in.

    Both happen under the row lock, so the worker's write either comes before
    (and the cancel applies to what it wrote) or sees the request. ``by`` (a
    user or token name) records an OperatorAction; the engine's own cancels of
    sibling branches pass none.
    """
    with transaction.atomic():
        execution = _lock(execution_id)
        if execution.status in FINAL_STATUSES:
            raise TransitionRefused(f"execution is {execution.status}")
        parked = _leased(execution)
        if parked:
            Execution.objects.filter(pk=execution.pk).update(cancel_request={"compensate": compensate})
        else:
            _apply_locked(execution, machine.Cancel(compensate=compensate))
        if by:
            Trace(OperatorActionKind.CANCEL, by, {"compensate": compensate, "parked": parked}).record(execution)
    execution.refresh_from_db()
    return execution


def retry_execution(execution_id, skip: bool = False, by: str = "") -> Execution:
    """Resume a FAILED execution from the step that failed; ``skip`` drops the compensation that failed for good."""
    kind = OperatorActionKind.RETRY_SKIP if skip else OperatorActionKind.RETRY
    return _apply_external(execution_id, machine.Retry(skip=skip), Trace(kind, by) if by else None)


def wake_execution(execution_id, by: str = "") -> Execution:
    return _apply_external(execution_id, machine.Wake(), Trace(OperatorActionKind.WAKE, by) if by else None)


def complete_callback(execution_id, outcome: str, body: dict, by: str) -> Execution:
    """An operator answers the callback the execution waits for, as its service would have ("succeeded"/"failed").

    The same event as a real callback (``deliver_callback``), applied under the
    row lock with the OperatorAction in the same transaction. The body is
    scrubbed of secrets like a received one. Refused while a worker is still
    sending the request (its answer would be lost) and for any other wait.
    """
    with transaction.atomic():
        execution = _lock(execution_id)
        awaited = machine.awaited_callback(execution.state)
        if awaited is None:
            raise TransitionRefused(f"execution does not wait for a callback (it is {execution.status})")
        node, attempt = awaited
        if _sending(execution, node, attempt):
            raise TransitionRefused("the request is still being sent; try again in a moment")
        body = scrub_secrets(body)
        _apply_locked(execution, machine.CallbackArrived(node, attempt, outcome, body))
        detail = {"node": node, "attempt": attempt, "outcome": outcome, "body": body}
        Trace(OperatorActionKind.COMPLETE_CALLBACK, by, detail).record(execution)
    execution.refresh_from_db()
    return execution


def deliver_callback(execution_id, node: str, attempt: int, body: Any, judge: Callable[[dict, Any], str]) -> None:
    """Apply an async node's callback; ``judge(spec, input)`` says "succeeded" or "failed".

    If the worker is still sending the request (it holds the lease and has not
    seen the answer), the callback is parked in ``pending_callback`` for that
    worker's next write, so the answer and the callback are both kept. Raises
    TransitionRefused if the node no longer waits, Execution.DoesNotExist for
    an unknown execution. One locked read, one write: the resume hot path.
    """
    with transaction.atomic():
        execution = _lock(execution_id)
        outcome = judge(execution.definition.spec, execution.input)
        telemetry.callback_received(execution, node, attempt, outcome)
        if not _sending(execution, node, attempt):
            _apply_locked(execution, machine.CallbackArrived(node, attempt, outcome, body))
            return
        if execution.pending_callback is not None:
            raise TransitionRefused("a callback for this attempt is already pending")
        parked = {"node": node, "attempt": attempt, "outcome": outcome, "body": body}
        parked["received_at"] = execution.db_now.isoformat()
        Execution.objects.filter(pk=execution.pk).update(pending_callback=parked)


def _sending(execution: Execution, node: str, attempt: int) -> bool:
    """A live worker is sending this node attempt's async request and has not seen the answer yet."""
    state = execution.state
    return machine.waits_for(state, node, attempt) and machine.answer_pending(state) and _leased(execution)


def record_heartbeat(execution_id, node: str, attempt: int) -> None:
    with transaction.atomic():
        _apply_locked(_lock(execution_id), machine.Heartbeat(node, attempt))
