"""`manage.py trama_stuck`: executions that need an operator's eye.

The timer loop enqueues every active execution whose ``due_at`` has passed,
within ``TRAMA_TIMER_POLL_SECONDS``; one still overdue well after that means
no timer loop or no worker is running (or they cannot reach the database or
the broker). FAILED executions wait for an operator by design: a retry moves
them out of FAILED, so every FAILED row is one nobody has retried since.
Branch executions of ``parallel`` nodes are listed like any other when they
are late; a FAILED branch is not, since its parent is FAILED too.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from django.core.management.base import BaseCommand
from django.db.models import F, Q
from django.db.models.functions import Now

from executions.models import Execution, ExecutionStatus
from trama_project.management.commands._cli import parse_duration, table, when

PAUSED = (ExecutionStatus.WAITING, ExecutionStatus.SLEEPING)
WORKING = (ExecutionStatus.RUNNING, ExecutionStatus.COMPENSATING)
REASONS = {
    "overdue": "waiting past its deadline: no timer loop or worker picked it up",
    "lease_expired": "its worker's lease expired: the worker died or hangs, nobody took over",
    "not_picked_up": "never picked up: is a worker running?",
    "failed": "FAILED, not retried: retry it (POST executions/{id}/retry/) or leave it",
}


class Command(BaseCommand):
    help = (
        "List stuck executions: WAITING/SLEEPING past their due time, RUNNING/COMPENSATING with an expired "
        "lease, PENDING nobody picked up (each by more than --margin), and FAILED ones never retried."
    )

    def add_arguments(self, parser):
        parser.add_argument("--margin", default="60s", help="How late counts as stuck (s/m/h/d), default 60s.")
        parser.add_argument("--no-failed", action="store_true", help="Leave FAILED executions out.")
        parser.add_argument("--limit", type=int, default=200, help="At most this many rows (default 200).")
        parser.add_argument("--json", action="store_true", help="A JSON list instead of a table.")

    def handle(self, *args, margin: str, no_failed: bool, limit: int, json: bool, **options):
        rows = stuck_executions(parse_duration(margin, "--margin"), include_failed=not no_failed, limit=max(limit, 1))
        if json:
            self.stdout.write(_as_json(rows))
        elif not rows:
            self.stdout.write(f"nothing stuck (margin {margin})")
        else:
            self.stdout.write(_as_table(rows))
            self.stdout.write(f"{len(rows)} stuck execution(s)")


def stuck_executions(margin: timedelta, include_failed: bool = True, limit: int = 200) -> list[dict]:
    """Every stuck execution as a dict (see REASONS), oldest problem first. Clock: the database's."""
    late = Now() - margin
    query = Q(status__in=PAUSED, due_at__lt=late) | Q(status__in=WORKING, lease_until__lt=late)
    query |= Q(status=ExecutionStatus.PENDING, due_at__lt=late) | Q(
        status__in=WORKING, lease_until=None, due_at__lt=late
    )
    if include_failed:
        # A failed branch of a parallel node ends its parent FAILED too: the parent is the one to retry.
        query |= Q(status=ExecutionStatus.FAILED, parent__isnull=True)
    found = Execution.objects.filter(query).select_related("definition").annotate(db_now=Now())
    oldest_first = found.order_by(F("due_at").asc(nulls_last=True), "finished_at")[:limit]
    rows = [_row(execution) for execution in oldest_first]
    return sorted(rows, key=lambda row: row["since"] or "")


def _row(execution: Execution) -> dict:
    reason = _reason(execution)
    since = _since(execution, reason)
    return {
        "id": str(execution.pk),
        "definition": execution.definition.name,
        "version": execution.definition.version,
        "status": execution.status,
        "parent": str(execution.parent_id) if execution.parent_id else None,
        "branch": execution.branch or None,
        "node": execution.current_node,
        "reason": reason,
        "explanation": REASONS[reason],
        "since": since.isoformat() if since else None,
        "late_s": round((execution.db_now - since).total_seconds(), 1) if since else None,
        "error": execution.error,
    }


def _reason(execution: Execution) -> str:
    if execution.status == ExecutionStatus.FAILED:
        return "failed"
    if execution.status in PAUSED:
        return "overdue"
    if execution.status in WORKING and execution.lease_until is not None:
        return "lease_expired"
    return "not_picked_up"


def _since(execution: Execution, reason: str) -> datetime | None:
    if reason == "failed":
        return execution.finished_at
    if reason == "lease_expired":
        return execution.lease_until
    return execution.due_at


def _as_table(rows: list[dict]) -> str:
    body = [[r["id"], _what(r), r["status"], r["node"] or "-", r["reason"], r["since"], _ago(r)] for r in rows]
    return table(body, ["ID", "DEFINITION", "STATUS", "NODE", "REASON", "SINCE", "LATE"])


def _what(row: dict) -> str:
    definition = f"{row['definition']} v{row['version']}"
    return f"{definition} branch {row['branch']} of {row['parent']}" if row["parent"] else definition


def _ago(row: dict) -> str:
    seconds = row["late_s"]
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def _as_json(rows: list[dict]) -> str:
    return json.dumps(rows, indent=2, default=when)
