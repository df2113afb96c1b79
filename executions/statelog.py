"""The state log: one ``trama.executions.state`` line per committed state change (docs/metrics.md, Logs).

executions/telemetry.py's hooks call it after the commit and hand it the
execution's trace id; nothing here knows of OpenTelemetry or the ORM.
"""

from __future__ import annotations

import logging

logger = logging.getLogger("trama.executions.state")
_PAUSED = ("SLEEPING", "WAITING")  # statuses whose due time the operator cares about (a wake-up, a deadline)


def log_claim(execution, trace_id: str) -> None:
    """The claim of a PENDING execution, which the claim's UPDATE made RUNNING (already committed).

    A worker that died before its first write leaves the state PENDING: its
    successor's claim is logged again, with a higher ``fence``.
    """
    queued = max((execution.db_now - execution.created_at).total_seconds(), 0.0)
    start = execution.state.get("node") or execution.definition.spec.get("start")  # a branch: its head
    extra = _identity(execution, trace_id) | {
        "event": "state_change",
        "previous_status": "PENDING",
        "status": "RUNNING",
        **{"node_id": start, "attempt": 1, "phase": "forward", "steps": {}},
        "fence": execution.fence,
        "queued_s": round(queued, 6),
    }
    logger.info("execution %s PENDING -> RUNNING: claimed after %.3fs queued", str(execution.pk), queued, extra=extra)


def _identity(execution, trace_id: str) -> dict:
    """What every line about an execution carries: its id and trace, and for a branch its parent."""
    extra = {
        "execution_id": str(execution.pk),
        "trace_id": trace_id,
        "definition": execution.definition.name,
    }
    if execution.parent_id:
        extra |= {"parent_execution_id": str(execution.parent_id), "branch": execution.branch}
    return extra


def state_line(execution, decision, fields: dict, trace_id: str) -> tuple[tuple, dict]:
    """The message and extras of one committed write.

    A write that changes the status is a ``state_change`` line ("RUNNING -> SLEEPING");
    one that keeps it (a step done and the next begun, a wake-up, a deadline moved) is a
    ``progress`` line that says what happened, never "RUNNING -> RUNNING". ``node_id``,
    ``attempt`` and ``phase`` name the step this write closed (the last, if several);
    ``next_*`` where the execution stands now. Without a closed step they say where it stands.
    """
    state = decision.state
    changed = execution.status != decision.status
    closed = _closed_steps(execution.state or {}, decision)
    where = {"node_id": state.get("node"), "attempt": state.get("attempt"), "phase": state.get("phase")}
    extra = _identity(execution, trace_id) | {
        "event": "state_change" if changed else "progress",
        "previous_status": execution.status,
        "status": decision.status,
        **where,
        "steps": {str(seq): step["status"] for seq, step in closed},
    }
    final = fields.get("finished_at") is not None
    if closed:
        last = closed[-1][1]
        extra |= {key: last.get(key) for key in where}
        if not final:
            extra |= {f"next_{key}": value for key, value in where.items()}
    failed = [step["error"] for _, step in closed if step.get("error")]
    if failed or state.get("error"):
        extra["error"] = failed[-1] if failed else state["error"]  # the attempt's own reason first
    due = fields.get("due_at") if decision.status in _PAUSED else None
    if due is not None:
        extra["due_at"] = due.isoformat()
    status = f"{execution.status} -> {decision.status}" if changed else f"still {decision.status}"
    happened = _what_happened(closed, where, extra, final)
    return ("execution %s %s%s", str(execution.pk), status, f": {happened}" if happened else ""), extra


def _closed_steps(before: dict, decision) -> list[tuple[int, dict]]:
    """(seq, fields) of each step this write closes. A step written when it began (a wait, a sleep)
    is closed by a record with only what changed: the rest comes from the state it was opened in."""
    opened = before.get("open_step") or {}
    closed = []
    for record in decision.steps:
        if "status" not in record.fields:
            continue
        fields = record.fields
        if "node_id" not in fields and before.get("open_seq") == record.seq:
            fields = (opened.get("fields") or {}) | fields
        closed.append((record.seq, fields))
    return closed


def _what_happened(closed: list[tuple[int, dict]], where: dict, extra: dict, final: bool) -> str:
    """The steps this write closed or opened, then where the execution stands (and when it is due, if paused).

    E.g. ``step 2 (b attempt 1) failed: HTTP 500; now at b attempt 2, due <time>``.
    """
    parts = [_step_words(seq, fields) for seq, fields in closed]
    if not final:
        due = f", due {extra['due_at']}" if "due_at" in extra else ""
        parts.append(f"now at {_position(where)}{due}")
    return "; ".join(parts)


def _position(where: dict) -> str:
    phase = "" if where["phase"] in ("forward", None) else f" {where['phase']}"
    return f"{where['node_id']}{phase} attempt {where['attempt']}"


_REASON_CHARS = 200  # of an error's message in the line's text; the ``error`` field has all of it


def _step_words(seq: int, fields: dict) -> str:
    """``step 3 (b compensation attempt 1) succeeded``, and a failed step's reason after a colon."""
    reason = (fields.get("error") or {}).get("message") if isinstance(fields.get("error"), dict) else None
    why = f": {str(reason)[:_REASON_CHARS]}" if reason else ""
    if "node_id" not in fields:
        return f"step {seq} {fields['status']}{why}"
    phase = "" if fields.get("phase") in ("forward", None) else f" {fields['phase']}"
    return f"step {seq} ({fields['node_id']}{phase} attempt {fields.get('attempt')}) {fields['status']}{why}"
