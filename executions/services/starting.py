"""Starting executions, idempotently."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from definitions.models import Definition
from definitions.services import find_definition, store_inline_definition
from executions import machine, telemetry
from executions.models import Execution, OperatorActionKind
from executions.services.records import Trace, TransitionRefused, enqueue, logger


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used for a start with a different body."""


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
    trace_parent: str = "",
) -> tuple[Execution, bool]:
    """Create a PENDING execution and wake a worker. Returns (execution, created).

    With an ``idempotency_key`` already used for the same body, the first
    execution comes back (created=False); for another body, IdempotencyConflict.
    ``trace_parent``: the caller's span (telemetry.caller_traceparent), parent of the execution's root span.
    """
    digest = digest or request_digest({"definition": definition.pk, "input": payload})
    if idempotency_key:
        existing = find_replayed_start(idempotency_key, digest)
        if existing is not None:
            return existing, False
    try:
        now = timezone.now()
        with transaction.atomic():
            execution = Execution.objects.create(
                definition=definition,
                input=payload,
                state=machine.new_state(),
                due_at=now,
                nudged_at=now,  # enqueued below: the timer loop enqueues it only if that wake-up is lost
                idempotency_key=idempotency_key or None,
                request_digest=digest,
                created_by=created_by,
                trace_parent=trace_parent,
            )
            enqueue(execution.pk)
    except IntegrityError:
        # Two starts with the same key raced; the other one won.
        existing = Execution.objects.get(idempotency_key=idempotency_key)
        return _same_start(existing, digest), False
    logger.info("execution started", extra={"execution_id": str(execution.pk), "definition": definition.name})
    telemetry.execution_created(execution)
    return execution, True


def start_requested(
    request: dict, idempotency_key: str | None = None, created_by: str = "", trace_parent: str = ""
) -> tuple[Execution, bool]:
    """Start what a client asked for, idempotently: ``definition`` (and ``version``), or an inline ``spec``; ``input``.

    A key already used for the same request replays its execution before any
    lookup, so a replay still answers after a new version was stored. Raises
    IdempotencyConflict, definitions.services.DefinitionNotFound or DefinitionInvalid.
    """
    digest = request_digest({key: request.get(key) for key in ("definition", "version", "spec", "input")})
    replayed = find_replayed_start(idempotency_key, digest) if idempotency_key else None
    if replayed is not None:
        return replayed, False
    definition = _requested_definition(request)
    return start_execution(definition, request["input"], idempotency_key, created_by, digest, trace_parent)


def rerun_execution(execution_id, payload: Any = None, latest: bool = False, by: str = "") -> Execution:
    """Start a new execution of the same definition with the same input (or ``payload``), traced on the original.

    ``latest`` starts the definition's latest stored version instead of the
    pinned one. A branch execution is not re-run on its own (its input and
    start node belong to its parent's fork): TransitionRefused.
    """
    original = Execution.objects.select_related("definition").get(pk=execution_id)
    if original.parent_id:
        raise TransitionRefused("a branch execution is re-run by re-running its parent")
    definition = original.definition
    if latest and definition.is_inline:
        raise TransitionRefused("an inline definition has no other version")
    if latest:
        definition = find_definition(definition.name)
    payload = original.input if payload is None else payload
    with transaction.atomic():
        execution, _ = start_execution(definition, payload, created_by=by)
        edited = payload != original.input
        detail = {"execution": str(execution.pk), "version": definition.version, "input_edited": edited}
        Trace(OperatorActionKind.RERUN, by, detail).record(original)
    return execution


def _requested_definition(request: dict) -> Definition:
    if "spec" in request:
        return store_inline_definition(request["spec"])
    return find_definition(request["definition"], request.get("version"))


def _same_start(existing: Execution, digest: str) -> Execution:
    if existing.request_digest != digest:
        raise IdempotencyConflict("Idempotency-Key was already used with a different request body")
    return existing
