"""The trama_* metrics on /metrics, counted from the database at scrape time (docs/metrics.md).

Executions, steps, retries, compensations, accepted callbacks, timers and the
queue are read from the tables every worker writes, so the numbers add up
across any number of worker processes and machines without a shared
directory, survive restarts, and cannot drift from the history the API shows.
The price is a few aggregate queries per scrape, bounded by a statement
timeout and cached for TRAMA_METRICS_CACHE_SECONDS.

Models are imported inside the functions: this module is imported from
AppConfig.ready() and must not touch the ORM before the apps are loaded.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

_log = logging.getLogger("trama.telemetry")


# Step latency buckets (seconds): HTTP calls at the low end, async waits and sleeps at the top.
STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0)
# A scrape must never hold the database: each query is cut off after this long (PostgreSQL).
_QUERY_TIMEOUT_MS = 5000


class DatabaseCollector(Collector):
    """Counts executions, steps, timers and the queue from the database at scrape time.

    Results are kept TRAMA_METRICS_CACHE_SECONDS so several scrapers (or a
    dashboard hammering /metrics) cost one set of queries. On a database
    error the last good values are served and ``trama_metrics_db_up`` is 0.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshot: dict | None = None
        self._taken_at = 0.0

    def describe(self):
        # Called at registration: must not touch the database (it may not exist yet).
        return _families(None, up=True, seconds=0.0)

    def collect(self):
        with self._lock:
            ttl = settings.TRAMA_METRICS_CACHE_SECONDS
            up, started = True, time.monotonic()
            if self._snapshot is None or started - self._taken_at >= ttl:
                try:
                    self._snapshot, self._taken_at = query_snapshot(), started
                except Exception as exc:  # a scrape must still show the HTTP metrics; the failure is a metric
                    _log.warning("metrics: database query failed: %s", exc)
                    up = False
            return _families(self._snapshot, up=up, seconds=time.monotonic() - started)


_collector: DatabaseCollector | None = None


def database_collector() -> DatabaseCollector:
    """This process's collector (one cache per process)."""
    global _collector
    if _collector is None:
        _collector = DatabaseCollector()
    return _collector


def export(request: HttpRequest) -> HttpResponse:
    """GET /metrics: this process's registry, or under gunicorn every worker's.

    deploy/gunicorn.conf.py sets PROMETHEUS_MULTIPROC_DIR, where each worker process
    writes its counters (django_http_*, trama_callbacks_rejected_total): a scrape,
    whichever worker answers it, sums them all, then adds the database families once.
    """
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry(auto_describe=False)
        multiprocess.MultiProcessCollector(registry)
        registry.register(database_collector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


def query_snapshot() -> dict:
    """Every database-derived value, in one transaction (statement timeout on PostgreSQL)."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(f"SET LOCAL statement_timeout = {_QUERY_TIMEOUT_MS}")
        return {
            "executions": _execution_counts(),
            "steps": _step_counts(),
            "timers": _timer_counts(),
            "queue": _queue_depth(),
        }


def _execution_counts() -> list[dict]:
    from django.db.models import Count

    from executions.models import Execution

    rows = Execution.objects.order_by().values("definition__name", "status").annotate(n=Count("id"))
    return list(rows)


def _step_counts() -> list[dict]:
    """One pass over finished steps: counts, retries, accepted callbacks and latency buckets."""
    from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum

    from executions.models import Step

    buckets = {f"le{i}": Count("id", filter=Q(took__lte=timedelta(seconds=b))) for i, b in enumerate(STEP_BUCKETS)}
    rows = (
        Step.objects.filter(finished_at__isnull=False)
        .alias(took=ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField()))
        .order_by()
        .values("node_type", "phase", "status")
        .annotate(
            n=Count("id"),
            retries=Count("id", filter=Q(attempt__gt=1)),
            callbacks=Count("id", filter=Q(detail__has_key="callback")),
            took_sum=Sum("took"),
            **buckets,
        )
    )
    return list(rows)


def _timer_counts() -> dict:
    """Timers not yet due (by status), and how late the oldest due one is."""
    from django.db.models import Count, DurationField, ExpressionWrapper, F, Max
    from django.db.models.functions import Now

    from executions.models import Execution

    timed = Execution.objects.filter(due_at__isnull=False).order_by()
    pending = timed.filter(due_at__gt=Now(), lease_until__isnull=True).values("status").annotate(n=Count("id"))
    late = ExpressionWrapper(Now() - F("due_at"), output_field=DurationField())
    due = timed.filter(due_at__lte=Now()).aggregate(n=Count("id"), lateness=Max(late))
    lateness = due["lateness"] or timedelta(0)
    return {"pending": {r["status"]: r["n"] for r in pending}, "due": due["n"], "lateness": lateness.total_seconds()}


def _queue_depth() -> int:
    from django_q.brokers import get_broker

    return get_broker().queue_size() or 0


def _families(snap: dict | None, up: bool, seconds: float) -> list:
    """Build every trama_* family from a snapshot (None: the empty families, for ``describe``)."""
    fams = _execution_families(snap["executions"] if snap else [])
    fams += _step_families(snap["steps"] if snap else [])
    fams += _timer_families(snap["timers"] if snap else None, snap["queue"] if snap else 0)
    fams.append(GaugeMetricFamily("trama_metrics_db_up", "1 if the last metrics query succeeded.", value=int(up)))
    fams.append(GaugeMetricFamily("trama_metrics_query_seconds", "Time spent collecting trama_*.", value=seconds))
    return fams


def _execution_families(rows: list[dict]) -> list:
    from executions.models import ACTIVE_STATUSES, FINAL_STATUSES

    started = CounterMetricFamily("trama_executions_started", "Executions started.", labels=["definition"])
    finished = CounterMetricFamily(
        "trama_executions_finished", "Executions that reached a final status.", labels=["definition", "status"]
    )
    active = GaugeMetricFamily("trama_executions_active", "Executions not final, by status.", labels=["status"])
    per_definition: dict[str, int] = {}
    per_active = dict.fromkeys(sorted(ACTIVE_STATUSES), 0)
    for row in rows:
        name, status, n = row["definition__name"], row["status"], row["n"]
        per_definition[name] = per_definition.get(name, 0) + n
        if status in FINAL_STATUSES:
            finished.add_metric([name, status], n)
        else:
            per_active[status] = per_active.get(status, 0) + n
    for name, n in sorted(per_definition.items()):
        started.add_metric([name], n)
    for status, n in per_active.items():
        active.add_metric([status], n)
    return [started, finished, active]


def _step_families(rows: list[dict]) -> list:
    steps = CounterMetricFamily("trama_steps", "Finished step attempts.", labels=["node_type", "phase", "outcome"])
    retries = CounterMetricFamily("trama_retries", "Step attempts after the first.", labels=["node_type", "phase"])
    compensations = CounterMetricFamily("trama_compensations", "Compensation attempts.", labels=["outcome"])
    callbacks = CounterMetricFamily("trama_callbacks_accepted", "Callbacks applied to a step.", labels=["outcome"])
    latency = HistogramMetricFamily(
        "trama_step_duration_seconds", "Step attempt duration.", labels=["node_type", "phase"]
    )
    merged: dict[tuple, dict] = {}
    sums: dict[tuple, dict] = {"retries": {}, "compensations": {}, "callbacks": {}}
    for row in rows:
        kind, phase, outcome = row["node_type"], row["phase"], row["status"]
        steps.add_metric([kind, phase, outcome], row["n"])
        _add(sums["retries"], (kind, phase), row["retries"])
        if phase == "compensation":
            _add(sums["compensations"], (outcome,), row["n"])
        if row["callbacks"]:
            _add(sums["callbacks"], (outcome,), row["callbacks"])
        hist = merged.setdefault((kind, phase), {"n": 0, "sum": 0.0, "le": [0] * len(STEP_BUCKETS)})
        hist["n"] += row["n"]
        hist["sum"] += row["took_sum"].total_seconds() if row["took_sum"] else 0.0
        hist["le"] = [a + row[f"le{i}"] for i, a in enumerate(hist["le"])]
    for family, key in ((retries, "retries"), (compensations, "compensations"), (callbacks, "callbacks")):
        for labels, n in sorted(sums[key].items()):
            family.add_metric(list(labels), n)
    for (kind, phase), hist in sorted(merged.items()):
        buckets = [(_le(b), n) for b, n in zip(STEP_BUCKETS, hist["le"], strict=True)] + [("+Inf", hist["n"])]
        latency.add_metric([kind, phase], buckets, sum_value=hist["sum"])
    return [steps, retries, compensations, callbacks, latency]


def _add(totals: dict, key: tuple, n: int) -> None:
    totals[key] = totals.get(key, 0) + n


def _le(bound: float) -> str:
    return repr(float(bound))


def _timer_families(timers: dict | None, queue: int) -> list:
    pending = GaugeMetricFamily("trama_timers_pending", "Timers set and not yet due, by status.", labels=["status"])
    for status, n in sorted((timers or {}).get("pending", {}).items()):
        pending.add_metric([status], n)
    timers = timers or {"due": 0, "lateness": 0.0}
    return [
        pending,
        GaugeMetricFamily("trama_timers_due", "Executions due and not yet claimed.", value=timers["due"]),
        GaugeMetricFamily(
            "trama_timer_oldest_due_lateness_seconds",
            "How long ago the oldest due timer fell due.",
            value=max(timers["lateness"], 0.0),
        ),
        GaugeMetricFamily("trama_queue_depth", "Tasks waiting in the django-q queue.", value=queue),
    ]
