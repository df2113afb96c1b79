"""The one write path of executions: every status change goes through here.

Workers call ``advance_execution``; the API calls ``start_execution``,
``cancel_execution``, ``retry_execution`` and ``wake_execution``; the callback
receiver calls ``deliver_callback``. Each one asks the pure state machine
(executions/machine.py) what to do and applies the answer with a write fenced
on ``Execution.fence``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Coalesce, Now
from django.utils import timezone
from django_q.tasks import async_task

from callbacks.tokens import callback_url, mint_callback_token
from definitions import templating
from definitions.models import Definition
from executions import dispatch, machine, telemetry
from executions.models import ACTIVE_STATUSES, FINAL_STATUSES, Execution, ExecutionStatus, Step

logger = logging.getLogger("trama.executions")

# A worker stops walking after this long and re-enqueues the execution, so one
# long chain never hits django-q's task timeout and other executions get a turn.
RUN_BUDGET_S = 30.0
# The timer loop enqueues a due execution again if nobody claimed it this long after the last nudge (a lost queue).
RENUDGE_AFTER_S = 30.0


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used for a start with a different body."""


class TransitionRefused(Exception):
    """The execution is not in a state that allows this (answer 409)."""


# --- Starting ---------------------------------------------------------------------------


def request_digest(start_request: Any) -> str:
    """SHA-256 of a start request as the client sent it, so a repeat matches even after a new version."""
    canonical = json.dumps(start_request, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def find_replayed_start(idempotency_key: str, digest: str) -> Execution | None:
    """The execution a start with this key already created; IdempotencyConflict if the body differed."""
    existing = Execution.objects.filter(idempotency_key=idempotency_key).first()
    return _same_start(existing, digest) if existing is not None else None


def start_execution(
    definition: Definition,
    payload: Any,
    idempotency_key: str | None = None,
    created_by: str = "",
    digest: str | None = None,
) -> tuple[Execution, bool]:
    """Create a PENDING execution and wake a worker. Returns (execution, created).

    With an ``idempotency_key`` already used for the same body, the first
    execution comes back (created=False); for another body, IdempotencyConflict.
    """
    digest = digest or request_digest({"definition": definition.pk, "input": payload})
    if idempotency_key:
        existing = find_replayed_start(idempotency_key, digest)
        if existing is not None:
            return existing, False
    try:
        with transaction.atomic():
            execution = Execution.objects.create(
                definition=definition,
                input=payload,
                state=machine.new_state(),
                due_at=timezone.now(),
                idempotency_key=idempotency_key or None,
                request_digest=digest,
                created_by=created_by,
            )
            enqueue(execution.pk)
    except IntegrityError:
        # Two starts with the same key raced; the other one won.
        existing = Execution.objects.get(idempotency_key=idempotency_key)
        return _same_start(existing, digest), False
    logger.info("execution started", extra={"execution_id": str(execution.pk), "definition": definition.name})
    return execution, True


def _same_start(existing: Execution, digest: str) -> Execution:
    if existing.request_digest != digest:
        raise IdempotencyConflict("Idempotency-Key was already used with a different request body")
    return existing


def enqueue(execution_id) -> None:
    """Wake a worker for this execution once the current transaction commits (never before)."""
    transaction.on_commit(lambda: async_task("executions.tasks.advance", str(execution_id), save=False))


# --- The worker side --------------------------------------------------------------------


def claim_execution(execution_id) -> Execution | None:
    """Take the execution if it is due and nobody holds a live lease on it.

    The conditional UPDATE is the lock: of two workers, one changes the row and
    the other sees 0 rows. Bumping ``fence`` makes every write of the previous
    holder (a worker paused past its lease) fail from now on.
    """
    lease = timedelta(seconds=settings.TRAMA_LEASE_SECONDS)
    won = Execution.objects.filter(pk=execution_id, status__in=ACTIVE_STATUSES, due_at__lte=Now()).update(
        fence=F("fence") + 1,
        lease_until=Now() + lease,
        due_at=Now() + lease,
        status=Case(When(status=ExecutionStatus.PENDING, then=Value(ExecutionStatus.RUNNING)), default=F("status")),
        started_at=Coalesce(F("started_at"), Now()),
    )
    if not won:
        return None
    return Execution.objects.select_related("definition").annotate(db_now=Now()).get(pk=execution_id)


def advance_execution(execution_id) -> None:
    """Worker entry point: claim, then walk the execution until it must pause."""
    execution = claim_execution(execution_id)
    if execution is not None:
        _Run(execution).run()


class _Run:
    """One claim of one execution by one worker: decide, call, commit, repeat."""

    def __init__(self, execution: Execution):
        self.execution = execution
        self.fence = execution.fence
        # All times derive from the database clock read at claim time.
        self._db_now, self._mono = execution.db_now, time.monotonic()
        self._deadline = self._mono + RUN_BUDGET_S

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
        event = _call_event(self.execution, decision.state, call, self.env())
        return self._decide(decision.state, event)

    def _perform_async(self, decision: machine.Decision, call: machine.SendAsync) -> machine.Decision | None:
        # Render first: a template error fails the attempt without any wait being committed.
        token = mint_callback_token(self.execution.pk, call.node, call.attempt, call.deadline)
        cb = {"url": callback_url(token), "token": token}
        rendered = _render_request(self.execution, decision.state, call.request, self.env(), cb)
        if isinstance(rendered, machine.CallFailed):
            return self._decide(decision.state, rendered)
        wire, recorded = rendered
        decision.actions.append(machine.StepRecord(call.seq, {"request": recorded}, new=False))
        # WAITING is durable before the request leaves. The lease stays: a callback that beats
        # the answer is parked in pending_callback and folded in by the commit below.
        if not self._commit(decision, hold=True):
            return None
        headers = {"X-Trama-Callback-Url": cb["url"], "X-Trama-Callback-Token": token}
        telemetry.call_started(self.execution, call)
        outcome = dispatch.send(wire, headers | _idempotency(self.execution, call.node, call.attempt))
        telemetry.call_finished(wire, outcome)
        event = _outcome_event(call.seq, wire, recorded, outcome, async_call=True)
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
        """
        fields = self._fields(decision, hold)
        query = Execution.objects.filter(pk=self.execution.pk, fence=self.fence)
        if clear_inbox:
            fields |= {"cancel_request": None, "pending_callback": None}
        else:
            query = query.filter(cancel_request__isnull=True, pending_callback__isnull=True)
        with transaction.atomic():
            if query.update(**fields):
                _write_steps(self.execution, decision.steps)
                _carry_out_branch_actions(self.execution, decision)
                if fields["due_at"] is not None and fields["due_at"] <= self.now() and not hold:
                    enqueue(self.execution.pk)
                telemetry.committed(self.execution, decision, fields)
                self.execution.status = decision.status
                decision.actions = [a for a in decision.actions if isinstance(a, machine.Call | machine.SendAsync)]
                return True
        inbox = Execution.objects.filter(pk=self.execution.pk, fence=self.fence).values_list(
            "pending_callback", "cancel_request"
        )
        events = _inbox_events(*inbox[0]) if inbox else []
        if not events:
            logger.warning("lost the execution to another worker", extra=self._log_extra())
            return False
        for event in events:
            decision = self._merge(decision, event)
        self._commit(decision, hold=False, clear_inbox=True)
        return False

    def _fields(self, decision: machine.Decision, hold: bool) -> dict:
        now = self.now()
        fields = _state_fields(decision, now)
        if hold:
            lease = now + timedelta(seconds=_lease_seconds(decision))
            fields |= {"lease_until": lease, "due_at": lease}
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


def _state_fields(decision: machine.Decision, now: datetime) -> dict:
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


def _write_steps(execution: Execution, records: list[machine.StepRecord]) -> None:
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


# --- Calls ---------------------------------------------------------------------------------


def env_for(execution: Execution, now: datetime) -> machine.Env:
    definition = execution.definition
    meta = {
        "id": str(execution.pk),
        "definition": definition.name,
        "version": definition.version,
        "started_at": (execution.started_at or execution.created_at).isoformat(),
    }
    return machine.Env(spec=definition.spec, payload=execution.input, execution=meta, now=now, key=str(execution.pk))


def configured_secrets() -> dict[str, str]:
    """``{{secrets.NAME}}`` values: every TRAMA_SECRET_<NAME> environment variable but the server's own key."""
    prefix = settings.TRAMA_SECRETS_PREFIX
    return {
        k[len(prefix) :]: v for k, v in os.environ.items() if k.startswith(prefix) and v and k != "TRAMA_SECRET_KEY"
    }


def _render_request(
    execution: Execution, state: dict, request: dict, env: machine.Env, cb: dict | None = None
) -> tuple[dict, dict] | machine.CallFailed:
    """(what goes on the wire, what the history stores with secrets masked), or a failed attempt."""
    try:
        wire = templating.render(request, machine.template_data(env, state, configured_secrets(), cb))
        recorded = templating.render(request, machine.template_data(env, state, machine.MASKED, cb))
    except templating.TemplateError as exc:
        return machine.CallFailed(state["open_seq"], "template", str(exc))
    recorded.pop("retry", None)
    return wire, recorded


def _idempotency(execution: Execution, node: str, attempt: int) -> dict:
    return {"Idempotency-Key": f"{execution.pk}:{node}:{attempt}"}


def _call_event(execution: Execution, state: dict, call: machine.Call, env: machine.Env) -> machine.Event:
    rendered = _render_request(execution, state, call.request, env)
    if isinstance(rendered, machine.CallFailed):
        return rendered
    wire, recorded = rendered
    key_node = f"{call.node}.compensation" if call.phase == machine.COMPENSATION else call.node
    telemetry.call_started(execution, call)
    outcome = dispatch.send(wire, _idempotency(execution, key_node, call.attempt))
    telemetry.call_finished(wire, outcome)
    return _outcome_event(call.seq, wire, recorded, outcome)


def _outcome_event(seq: int, wire: dict, recorded: dict, outcome: dispatch.Outcome, async_call: bool = False):
    record: dict[str, Any] = {"request": recorded}
    response = outcome.response
    if response is None:
        return machine.CallFailed(seq, outcome.failure or "network", outcome.error, None, record)
    response = _scrub_secrets(response)
    record |= {
        "response_status": response["status"],
        "response_headers": response["headers"],
        "response_body": response["body"],
    }
    if not dispatch.is_success(wire, response["status"]):
        return machine.CallFailed(seq, "status", f"HTTP {response['status']}", response, record)
    if async_call:
        return machine.AsyncAccepted(seq, response, record)
    return machine.CallSucceeded(seq, response, record)


def _scrub_secrets(value: Any) -> Any:
    """A service that echoes a secret back must not get it stored."""
    secrets = [s for s in configured_secrets().values() if len(s) >= 4]
    if not secrets:
        return value
    text = json.dumps(value)
    if not any(s in text for s in secrets):
        return value
    for secret in secrets:
        text = text.replace(json.dumps(secret)[1:-1], "***")
    return json.loads(text)


# --- Events from outside a worker -------------------------------------------------------------


def _apply_external(execution_id, event: machine.Event) -> Execution:
    """Apply an event that does not come from a worker's own call, under the row lock.

    The fence is bumped so a worker that claimed the row meanwhile cannot
    overwrite the result. Raises TransitionRefused when the machine rejects the
    event, or when a worker holds a live lease.
    """
    with transaction.atomic():
        execution = _lock(execution_id)
        if _leased(execution):
            raise TransitionRefused("a worker is in the middle of a step; try again")
        _apply_locked(execution, event)
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
    fields = _state_fields(decision, now) | {"fence": F("fence") + 1, "lease_until": None}
    if decision.status in FINAL_STATUSES:
        fields["cancel_request"] = None
    Execution.objects.filter(pk=execution.pk).update(**fields)
    _write_steps(execution, decision.steps)
    _carry_out_branch_actions(execution, decision)
    telemetry.committed(execution, decision, fields)
    if decision.due_at is not None and decision.due_at <= now:
        enqueue(execution.pk)


# --- Parallel branches ------------------------------------------------------------------------------


def _carry_out_branch_actions(execution: Execution, decision: machine.Decision) -> None:
    """Call inside the transaction that wrote ``decision``: forks, sibling cancels, and the join report."""
    for action in decision.actions:
        if isinstance(action, machine.Fork):
            _spawn_branches(execution, decision.state, action)
        elif isinstance(action, machine.CancelBranches):
            # After commit and outside this row's lock: each branch takes its own lock, then ours.
            transaction.on_commit(lambda a=action: _cancel_branches(execution.pk, a))
    if decision.status in FINAL_STATUSES and execution.parent_id:
        _report_to_parent(execution, decision.state)


def _spawn_branches(parent: Execution, state: dict, fork: machine.Fork) -> None:
    branches = [
        Execution(
            definition_id=parent.definition_id,
            parent=parent,
            branch=head,
            input=parent.input,
            state=machine.branch_state(state, head),
            due_at=timezone.now(),
            created_by=parent.created_by,
        )
        for head in fork.branches
    ]
    for branch in Execution.objects.bulk_create(branches):
        enqueue(branch.pk)


def _report_to_parent(branch: Execution, state: dict) -> None:
    """A branch ended: tell its parent, under the parent's lock (branch lock first, then parent: one order)."""
    parent = _lock(branch.parent_id)
    results = {k: v for k, v in state["results"].items() if k not in parent.state.get("results", {})}
    event = machine.BranchFinished(branch.branch, state["status"], results, state["done"])
    try:
        _apply_locked(parent, event)
    except TransitionRefused:
        logger.info("parent no longer waits for branch %s", branch.branch, extra={"execution_id": str(parent.pk)})


def _cancel_branches(parent_id, action: machine.CancelBranches) -> None:
    for branch in Execution.objects.filter(parent_id=parent_id, branch__in=action.branches):
        # One that ended on its own meanwhile refuses; its report reaches the parent anyway.
        with contextlib.suppress(TransitionRefused):
            cancel_execution(branch.pk, compensate=action.compensate)


def cancel_execution(execution_id, compensate: bool = True) -> Execution:
    """Cancel now; or, if a worker is in the middle of a step, leave a request that its next write folds in.

    Both happen under the row lock, so the worker's write either comes before
    (and the cancel applies to what it wrote) or sees the request.
    """
    with transaction.atomic():
        execution = _lock(execution_id)
        if execution.status in FINAL_STATUSES:
            raise TransitionRefused(f"execution is {execution.status}")
        if _leased(execution):
            Execution.objects.filter(pk=execution.pk).update(cancel_request={"compensate": compensate})
        else:
            _apply_locked(execution, machine.Cancel(compensate=compensate))
    execution.refresh_from_db()
    return execution


def retry_execution(execution_id, skip: bool = False) -> Execution:
    return _apply_external(execution_id, machine.Retry(skip=skip))


def wake_execution(execution_id) -> Execution:
    return _apply_external(execution_id, machine.Wake())


def deliver_callback(execution_id, node: str, attempt: int, body: Any, judge: Callable[[dict], str]) -> None:
    """Apply an async node's callback; ``judge(node_spec)`` says "succeeded" or "failed".

    If the worker is still sending the request (it holds the lease and has not
    seen the answer), the callback is parked in ``pending_callback`` for that
    worker's next write, so the answer and the callback are both kept. Raises
    TransitionRefused if the node no longer waits, Execution.DoesNotExist for
    an unknown execution. One locked read, one write: the resume hot path.
    """
    with transaction.atomic():
        execution = _lock(execution_id)
        outcome = judge(execution.definition.spec["nodes"].get(node) or {})
        telemetry.callback_received(execution_id, node, attempt, outcome)
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
    wait = state.get("wait") or {}
    waiting_here = (
        state.get("status") == machine.WAITING and state.get("node") == node and state.get("attempt") == attempt
    )
    return waiting_here and not wait.get("acked") and _leased(execution)


def record_heartbeat(execution_id, node: str, attempt: int) -> None:
    with transaction.atomic():
        _apply_locked(_lock(execution_id), machine.Heartbeat(node, attempt))


# --- Timers ---------------------------------------------------------------------------------------


def enqueue_due_executions(limit: int = 500) -> int:
    """One pass of the timer loop: enqueue executions whose ``due_at`` has passed.

    Reads only due rows (partial index on due_at). ``nudged_at`` keeps a row
    from being enqueued again on every pass while its task waits in the queue;
    it is enqueued again if nobody claims it within RENUDGE_AFTER_S (a lost
    queue). Several timer processes may run: SKIP LOCKED splits the rows.
    """
    renudge = timedelta(seconds=RENUDGE_AFTER_S)
    with transaction.atomic():
        due = (
            Execution.objects.select_for_update(skip_locked=True)
            .filter(due_at__lte=Now())
            .filter(Q(nudged_at__isnull=True) | Q(nudged_at__lt=F("due_at")) | Q(nudged_at__lt=Now() - renudge))
            .order_by("due_at")
            .values_list("pk", flat=True)[:limit]
        )
        ids = list(due)
        if not ids:
            return 0
        Execution.objects.filter(pk__in=ids).update(nudged_at=Now())
        for execution_id in ids:
            enqueue(execution_id)
    return len(ids)
