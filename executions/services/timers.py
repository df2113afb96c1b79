"""The timer loop's unit of work: enqueue what is due."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Now

from executions.models import Execution
from executions.services.records import enqueue


def enqueue_due_executions(limit: int = 500) -> int:
    """One pass of the timer loop: enqueue executions whose ``due_at`` has passed.

    Reads only due rows (partial index on due_at). ``nudged_at`` keeps a row
    from being enqueued again on every pass while its task waits in the queue;
    it is enqueued again if nobody claims it within TRAMA_RENUDGE_SECONDS (a
    lost queue, or a worker killed after taking the task from the queue and
    before claiming). Several timer processes may run: SKIP LOCKED splits the rows.
    """
    renudge = timedelta(seconds=settings.TRAMA_RENUDGE_SECONDS)
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
