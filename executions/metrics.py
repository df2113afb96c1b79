"""The trama_* metrics on /metrics, counted from the database at scrape time (docs/metrics.md).

Executions, steps, retries, compensations, accepted callbacks, timers and the
queue are read from the tables every worker writes, so the numbers add up
across any number of worker processes and machines without a shared
directory, survive restarts, and cannot drift from the history the API shows.
The history is read through running totals (executions/tallies.py), so a
scrape costs the recent rows, not all of them; the queries are bounded by a
statement timeout and cached for TRAMA_METRICS_CACHE_SECONDS.

Worker processes and timer loops report their health through the database as
well (executions/heartbeat.py), one series per live process.

This module is imported from AppConfig.ready(), once the models are loaded; it
queries nothing before a scrape.
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

from executions import tallies, telemetry

_log = logging.getLogger("trama.telemetry")


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
        return _families(None, up=True, age=0.0)

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
            age = time.monotonic() - self._taken_at if self._snapshot is not None else 0.0
            return _families(self._snapshot, up=up, age=age)


_collector: DatabaseCollector | None = None


def database_collector() -> DatabaseCollector:
    """This process's collector (one cache per process)."""
    global _collector
    if _collector is None:
        _collector = DatabaseCollector()
    return _collector


_installed = False


def install() -> None:
    """Register the /metrics collector on the default registry (AppConfig.ready, once per process)."""
    global _installed
    if not _installed:
        REGISTRY.register(database_collector())
        _installed = True


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
    began = time.monotonic()
    tallies.catch_up()  # its own transactions: what it folds stays folded whatever happens below
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(f"SET LOCAL statement_timeout = {_QUERY_TIMEOUT_MS}")
        snap = {"totals": tallies.snapshot(), "timers": _timer_counts(), "queue": _queue_depth()}
        snap["processes"] = _process_health()
    return snap | {"seconds": time.monotonic() - began}


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


def _process_health() -> list[tuple[str, str, dict]]:
    """(process, role, values) of every worker process and timer loop that reported lately (executions/heartbeat.py).

    A process silent for three intervals is gone (its series end); rows a day old are deleted.
    """
    from django.db.models.functions import Now

    from executions.models import WorkerHeartbeat

    interval = timedelta(seconds=settings.TRAMA_HEARTBEAT_SECONDS)
    WorkerHeartbeat.objects.filter(updated_at__lt=Now() - timedelta(days=1)).delete()
    live = WorkerHeartbeat.objects.filter(updated_at__gte=Now() - 3 * interval).order_by("process")
    return list(live.values_list("process", "role", "values"))


def _queue_depth() -> int:
    from django_q.brokers import get_broker

    return get_broker().queue_size() or 0


def _families(snap: dict | None, up: bool, age: float) -> list:
    """Build every trama_* family from a snapshot (None: the empty families, for ``describe``)."""
    totals = snap["totals"] if snap else {"steps": {}, "executions": {}, "active": []}
    fams = _execution_families(totals["executions"], totals["active"], branches=False)
    fams += _execution_families(totals["executions"], totals["active"], branches=True)
    fams += _step_families(totals["steps"])
    fams += _timer_families(snap["timers"] if snap else None, snap["queue"] if snap else 0)
    fams += _process_families(snap["processes"] if snap else [])
    fams.append(GaugeMetricFamily("trama_metrics_db_up", "1 if the last metrics query succeeded.", value=int(up)))
    fams.append(
        GaugeMetricFamily(
            "trama_metrics_query_seconds",
            "How long the queries behind the values served took (not this scrape, which may be cached).",
            value=snap["seconds"] if snap else 0.0,
        )
    )
    fams.append(GaugeMetricFamily("trama_metrics_age_seconds", "Age of the values served (cache).", value=age))
    backlog = totals.get("backlog", 0.0)
    fams.append(
        GaugeMetricFamily(
            "trama_metrics_backlog_seconds",
            "History not folded into the totals yet, in seconds of finish times (after an upgrade).",
            value=backlog,
        )
    )
    return fams


def _execution_families(finished_rows: dict, active_rows: list, branches: bool) -> list:
    """Executions started on their own (``trama_executions_*``) or as parallel branches (``trama_branches_*``)."""
    from executions.models import ACTIVE_STATUSES

    what = "branches" if branches else "executions"
    started = CounterMetricFamily(f"trama_{what}_started", f"{what.capitalize()} started.", labels=["definition"])
    finished = CounterMetricFamily(
        f"trama_{what}_finished", f"{what.capitalize()} that reached a final status.", labels=["definition", "status"]
    )
    active = GaugeMetricFamily(f"trama_{what}_active", f"{what.capitalize()} not final, by status.", labels=["status"])
    per_definition: dict[str, int] = {}
    per_active = dict.fromkeys(sorted(ACTIVE_STATUSES), 0)
    for (name, status, is_branch), values in sorted(finished_rows.items()):
        if is_branch == branches:
            finished.add_metric([name, status], values["n"])
            per_definition[name] = per_definition.get(name, 0) + values["n"]
    for name, status, is_branch, n in active_rows:
        if is_branch == branches:
            per_definition[name] = per_definition.get(name, 0) + n
            per_active[status] = per_active.get(status, 0) + n
    for name, n in sorted(per_definition.items()):
        started.add_metric([name], n)
    for status, n in per_active.items():
        active.add_metric([status], n)
    families = [started, finished, active]
    if not branches:
        families.append(_execution_latency(finished_rows))
    return families


def _execution_latency(finished_rows: dict) -> HistogramMetricFamily:
    latency = HistogramMetricFamily(
        "trama_execution_duration_seconds",
        "Created to final status, executions started on their own.",
        labels=["definition", "status"],
    )
    for (name, status, is_branch), values in sorted(finished_rows.items()):
        if not is_branch:
            latency.add_metric([name, status], _buckets(tallies.EXECUTION_BUCKETS, values), sum_value=values["sum"])
    return latency


_NODE = ["definition", "node", "node_type", "phase"]


def _step_families(rows: dict) -> list:
    steps = CounterMetricFamily("trama_steps", "Finished step attempts.", labels=[*_NODE, "outcome"])
    failures = CounterMetricFamily("trama_step_failures", "Failed step attempts, by kind.", labels=[*_NODE, "kind"])
    retries = CounterMetricFamily("trama_retries", "Step attempts after the first.", labels=_NODE)
    compensations = CounterMetricFamily("trama_compensations", "Compensation attempts.", labels=["outcome"])
    callbacks = CounterMetricFamily("trama_callbacks_accepted", "Callbacks applied to a step.", labels=["outcome"])
    latency = HistogramMetricFamily("trama_step_duration_seconds", "Step attempt duration.", labels=_NODE)
    sums: dict[str, dict] = {"steps": {}, "failures": {}, "retries": {}, "compensations": {}, "callbacks": {}}
    merged: dict[tuple, dict] = {}
    for (definition, node, kind, phase, outcome, failure), values in rows.items():
        where = (definition, node, kind, phase)
        _add(sums["steps"], (*where, outcome), values["n"])
        if failure:
            _add(sums["failures"], (*where, failure), values["n"])
        _add(sums["retries"], where, values["retries"])
        if phase == "compensation":
            _add(sums["compensations"], (outcome,), values["n"])
        if values["callbacks"]:
            _add(sums["callbacks"], (outcome,), values["callbacks"])
        tallies.merge(merged, where, {k: values[k] for k in ("n", "sum", "le")})
    for family, key in ((steps, "steps"), (failures, "failures"), (retries, "retries")):
        for labels, n in sorted(sums[key].items()):
            family.add_metric(list(labels), n)
    for family, key in ((compensations, "compensations"), (callbacks, "callbacks")):
        for labels, n in sorted(sums[key].items()):
            family.add_metric(list(labels), n)
    for labels, hist in sorted(merged.items()):
        latency.add_metric(list(labels), _buckets(tallies.STEP_BUCKETS, hist), sum_value=hist["sum"])
    return [steps, failures, retries, compensations, callbacks, latency]


# Worker-health families: (name, help, where in a heartbeat's values, type).
_PROCESS_SERIES = (
    ("trama_worker_executions_in_flight", "Executions a worker process is advancing.", ("gauges", "in_flight")),
    ("trama_worker_capacity", "Executions a worker process may advance at once.", ("gauges", "capacity")),
    ("trama_fence_conflicts", "Writes lost to a newer claim of the execution.", ("counts", "fence_conflicts")),
    ("trama_db_write_retries", "Engine writes retried after a database error.", ("counts", "db_write_retries")),
    ("trama_leases_lapsed", "Executions found with a lapsed lease, taken over.", ("counts", "leases_lapsed")),
    ("trama_timer_enqueued", "Executions the timer loop enqueued.", ("counts", "timer_enqueued")),
    (
        "trama_timer_lag_seconds",
        "How late the oldest row of the timer loop's last pass was.",
        ("gauges", "timer_lag_seconds"),
    ),
)


def _process_families(rows: list[tuple[str, str, dict]]) -> list:
    """One series per live process (label ``process`` = host:pid), and how many of each role report."""
    families = []
    for name, doc, (section, key) in _PROCESS_SERIES:
        family = (GaugeMetricFamily if section == "gauges" else CounterMetricFamily)(
            name, doc, labels=["process", "role"]
        )
        for process, role, values in rows:
            if key in values.get(section, {}):
                family.add_metric([process, role], values[section][key])
        families.append(family)
    schedule = HistogramMetricFamily(
        "trama_schedule_to_start_seconds", "Due to claimed by a worker.", labels=["process", "role"]
    )
    reporting = GaugeMetricFamily("trama_processes_reporting", "Processes whose heartbeat is recent.", labels=["role"])
    roles: dict[str, int] = {"worker": 0, "timer": 0}
    for process, role, values in rows:
        roles[role] = roles.get(role, 0) + 1
        if role == "worker":
            hist = values["schedule"]
            schedule.add_metric([process, role], _buckets(telemetry.SCHEDULE_BUCKETS, hist), sum_value=hist["sum"])
    for role, n in sorted(roles.items()):
        reporting.add_metric([role], n)
    return [*families, schedule, reporting]


def _buckets(bounds: tuple[float, ...], values: dict) -> list[tuple[str, float]]:
    return [(repr(float(b)), n) for b, n in zip(bounds, values["le"], strict=True)] + [("+Inf", values["n"])]


def _add(totals: dict, key: tuple, n: int) -> None:
    totals[key] = totals.get(key, 0) + n


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
