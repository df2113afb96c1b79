"""The dashboard's and the definitions pages' figures: counts by status, slow and failing definitions.

Root executions only (a parallel branch is part of its parent's run). Windows are
bounded by ``created_at`` so the dashboard reads the recent part of the
``execution_created`` index, however large the history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from itertools import groupby

from django.db.models import Avg, Count, DurationField, ExpressionWrapper, F, Q, QuerySet
from django.utils import timezone

from definitions.models import Definition
from executions.models import WAITING_STATUSES, Execution, ExecutionStatus

# "Failed" for a failure rate: every way an execution did not reach its goal but a cancel.
FAILED_STATUSES = (ExecutionStatus.FAILED, ExecutionStatus.COMPENSATED)
TOP = 5


def _roots() -> QuerySet[Execution]:
    return Execution.objects.filter(parent__isnull=True)


def counts_by_status(since: timedelta) -> dict[str, int]:
    """Root executions created in the last ``since``, per status (every status, zeros included)."""
    rows = _roots().filter(created_at__gte=timezone.now() - since).values("status").annotate(n=Count("pk"))
    found = {row["status"]: row["n"] for row in rows.order_by()}
    return {status: found.get(status, 0) for status in ExecutionStatus.values}


def slowest_definitions(since: timedelta) -> list[dict]:
    """Definitions by mean duration of their executions created in the window and finished, slowest first.

    The window is on ``created_at`` (indexed), not ``finished_at`` (not indexed): a day's dashboard reads
    a day of rows, whatever the size of the history.
    """
    took = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
    rows = (
        _roots()
        .filter(created_at__gte=timezone.now() - since, finished_at__isnull=False, started_at__isnull=False)
        .values("definition__name")
        .annotate(mean=Avg(took), runs=Count("pk"))
        .order_by("-mean")
    )
    return [{"name": r["definition__name"], "mean": r["mean"], "runs": r["runs"]} for r in rows[:TOP]]


def most_failing_definitions(since: timedelta) -> list[dict]:
    """Definitions with the most failed executions created in the window, with their failure rate."""
    rows = (
        _with_failures(_roots().filter(created_at__gte=timezone.now() - since).values("definition__name"))
        .filter(failed__gt=0)
        .order_by("-failed", "definition__name")
    )
    return [_rate_row(r["definition__name"], r) for r in rows[:TOP]]


def _with_failures(rows: QuerySet) -> QuerySet:
    return rows.annotate(total=Count("pk"), failed=Count("pk", filter=Q(status__in=FAILED_STATUSES)))


def _rate_row(name: str, row: dict) -> dict:
    rate = row["failed"] / row["total"] if row["total"] else 0.0
    return {"name": name, "total": row["total"], "failed": row["failed"], "rate": rate}


def waiting_longest(limit: int = 10) -> list[Execution]:
    """WAITING and SLEEPING root executions, the longest unchanged first (``updated_at``: their last write)."""
    waiting = _roots().filter(status__in=WAITING_STATUSES).select_related("definition")
    return list(waiting.order_by("updated_at")[:limit])


@dataclass
class DefinitionSummary:
    """A definition name with its stored versions (newest first) and its executions' counts: over every
    version (``total``, ``failed``) and per version (``runs``, by version number)."""

    name: str
    versions: list[Definition]
    total: int = 0
    failed: int = 0
    runs: dict[int, int] = field(default_factory=dict)

    @property
    def latest(self) -> Definition:
        return self.versions[0]

    @property
    def rate(self) -> float:
        return self.failed / self.total if self.total else 0.0


def definition_summaries(name: str | None = None) -> list[DefinitionSummary]:
    """Stored (not inline) definitions grouped by name, with execution counts: all of them, or one name's.

    One pass over the executions, grouped by definition id with no join (the ids are already known
    here): a name's totals and each version's count are sums of those rows. For one name, its ids
    select its rows through ``execution_definition_created``; for all names, one scan of the roots.
    """
    stored = Definition.objects.filter(is_inline=False).order_by("name", "-version")
    if name is not None:
        stored = stored.filter(name=name)
    summaries = {n: DefinitionSummary(n, list(rows)) for n, rows in groupby(stored, key=lambda d: d.name)}
    version_of = {d.pk: (summary, d.version) for summary in summaries.values() for d in summary.versions}
    roots = _roots() if name is None else _roots().filter(definition_id__in=list(version_of))
    for row in _with_failures(roots.values("definition_id")).order_by():
        if row["definition_id"] not in version_of:
            continue  # an inline definition's executions: not listed here
        summary, version = version_of[row["definition_id"]]
        summary.total += row["total"]
        summary.failed += row["failed"]
        summary.runs[version] = row["total"]
    return list(summaries.values())
