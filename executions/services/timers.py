"""The timer loop's unit of work: enqueue what is due."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Now

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
        due = Execution.objects.select_for_update(skip_locked=True).filter(due_at__lte=Now()).order_by("due_at")
        ids = list(
            due.filter(Q(nudged_at__isnull=True) | Q(nudged_at__lt=F("due_at"))).values_list("pk", flat=True)[:limit]
        )
        if not ids:
            renudge = timedelta(seconds=settings.TRAMA_RENUDGE_SECONDS)
            stale = list(due.filter(nudged_at__lt=Now() - renudge).values_list("pk", flat=True)[:limit])
            ids = stale if stale and _queue_is_empty() else []
        if not ids:
            return 0
        Execution.objects.filter(pk__in=ids).update(nudged_at=Now())
        enqueue(*ids)
    return len(ids)


def _queue_is_empty() -> bool:
    return not queue_broker().queue_size()
