"""The timer loop's unit of work: enqueue what is due."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Now

from executions import telemetry
from executions.models import Execution
from executions.services.records import enqueue, queue_broker


def enqueue_due_executions(limit: int = 500) -> int:
    """One pass of the timer loop: enqueue executions whose ``due_at`` has passed.

    Reads only due rows (partial index on due_at). Whoever makes a row due now
    (a start, a callback, a released worker) enqueues it and sets ``nudged_at``;
    this loop enqueues what became due by the clock (sleeps, back-offs,
    deadlines, dead workers' leases). A row enqueued but not claimed within
    TRAMA_RENUDGE_SECONDS is enqueued again only when the queue is empty: its
    wake-up was lost (a flushed broker, a worker killed holding the task), not
    merely waiting behind a backlog that re-queueing would only grow.
    Several timer processes may run: SKIP LOCKED splits the rows.
    """
    with transaction.atomic():
        due = (
            Execution.objects.select_for_update(skip_locked=True)
            .filter(due_at__lte=Now())
            .annotate(seen_at=Now())
            .order_by("due_at")
        )
        rows = list(due.filter(Q(nudged_at__isnull=True) | Q(nudged_at__lt=F("due_at"))).values_list(*_SEEN)[:limit])
        if not rows:
            renudge = timedelta(seconds=settings.TRAMA_RENUDGE_SECONDS)
            stale = list(due.filter(nudged_at__lt=Now() - renudge).values_list(*_SEEN)[:limit])
            rows = stale if stale and _queue_is_empty() else []
        if not rows:
            telemetry.timer_pass(0, 0, 0.0)
            return 0
        ids = [pk for pk, *_ in rows]
        Execution.objects.filter(pk__in=ids).update(nudged_at=Now())
        enqueue(*ids)
    _report(rows)
    return len(ids)


# What a pass reads of each due row: its id, and for the health metrics how late it is and whether
# a worker's lease lapsed on it (that worker died or stalled; the next claim takes it over).
_SEEN = ("pk", "due_at", "lease_until", "seen_at")


def _report(rows: list[tuple]) -> None:
    lag = max((seen_at - due_at).total_seconds() for _, due_at, _, seen_at in rows)  # database clock
    telemetry.timer_pass(len(rows), sum(lease is not None for _, _, lease, _ in rows), max(lag, 0.0))


def _queue_is_empty() -> bool:
    return not queue_broker().queue_size()
