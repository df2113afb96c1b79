"""The database-derived ``trama_*`` totals, at a cost that follows recent rows, not the history.

A full pass over the step history grows ~1.2 µs per row: at 10 million steps a
scrape would take 12 s. Instead, finished rows are folded into running totals
(``MetricTally``) once they are older than TRAMA_METRICS_SETTLE_SECONDS, and a
scrape adds up:

* the totals, read in one statement together with their watermark (the
  ``finished_at`` they cover up to), so a fold committed meanwhile cannot
  count a row twice or not at all;
* the rows finished after the watermark (``step_finished`` and
  ``execution_finished`` partial indexes): about the settle window's worth;
* the executions not yet final (the ``execution_status_created`` index).

Folding waits the settle window because ``finished_at`` is the worker's clock
reading when the step closed, and the write that carries it may commit later
(the worker retries a write while its lease lasts): a row committed with a
``finished_at`` the watermark already passed would be missed. Each fold takes at
most FOLD_CHUNK steps and runs under an advisory lock, so two web processes
never fold the same rows and a backlog (the first scrape after an upgrade)
is caught up over several scrapes.

Label bound: ``definition`` is a stored definition's name, or ``(inline)`` for
every definition sent inline with a start; ``node`` is a node id of a named
definition, ``(inline)`` for inline ones. Series therefore grow with the named
definitions' nodes, never with executions or inline definitions.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Case, Count, DurationField, ExpressionWrapper, F, Q, Sum, TextField, Value, When
from django.db.models.fields.json import KeyTextTransform

from executions.choices import ACTIVE_STATUSES
from executions.models import Execution, MetricTally, Step

# Step latency buckets (seconds): HTTP calls at the low end, async waits and sleeps at the top.
STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0)
# Execution latency, created to finished: a chain of calls up to day-long sagas with waits.
EXECUTION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0, 21600.0, 86400.0)
INLINE = "(inline)"
FOLD_CHUNK = 50_000  # steps per fold: ~0.1 s of aggregation (250,000 took 17 s at load 27 on 2 cores)
FOLD_EVERY = timedelta(seconds=10)  # a scrape between two folds only reads the totals and the recent rows
FOLD_BUDGET_S = 1.0  # a scrape folds chunks for up to this long: a backlog of minutes is gone in one scrape
FOLD_TIMEOUT_MS = 20_000  # one chunk's statements, even on a loaded database
# Totals further behind than this (beyond the settle window) are served without the rows after them.
CATCHING_UP = timedelta(minutes=10)
_WATERMARK = json.dumps(["watermark"])
_log = logging.getLogger("trama.telemetry")
_FOLD_LOCK = 0x7472616D61  # "trama": one folder at a time across web processes


def snapshot() -> dict:
    """Totals plus the rows after the watermark: ``{"steps": {key: values}, "executions": {...}, "active": ...}``.

    Call inside a transaction (metrics.query_snapshot sets its statement timeout), after ``catch_up``.
    While the totals are far behind (the first scrapes after an upgrade), the rows after the
    watermark are too many to read on every scrape: the totals alone are served, lower than the
    truth but never decreasing, and ``backlog`` says how far behind they are.
    """
    tallies, watermark = _read_tallies()
    steps, executions = tallies.get("step", {}), tallies.get("execution", {})
    backlog = _backlog(watermark)
    if backlog <= CATCHING_UP.total_seconds():
        for key, values in _step_rows(_after(Step.objects, watermark)):
            merge(steps, key, values)
        for key, values in _execution_rows(_after(Execution.objects, watermark)):
            merge(executions, key, values)
    active = _active_counts()
    return {"steps": steps, "executions": executions, "active": active, "backlog": backlog}


def _backlog(watermark: datetime | None) -> float:
    """Seconds of settled rows not folded in yet (0 on SQLite, which reads every row)."""
    if connection.vendor != "postgresql":
        return 0.0
    if watermark is None:
        return float("inf")
    settled = _db_now() - timedelta(seconds=settings.TRAMA_METRICS_SETTLE_SECONDS)
    return max((settled - watermark).total_seconds(), 0.0)


def catch_up(budget_s: float = FOLD_BUDGET_S) -> None:
    """Fold chunk after chunk for up to ``budget_s``; each fold commits on its own, so progress is kept
    whatever happens to the scrape after. A fold that fails is logged, and the next scrape retries it."""
    deadline = time.monotonic() + budget_s
    try:
        while fold() and time.monotonic() < deadline:
            pass
    except DatabaseError as exc:
        _log.warning("metrics: folding the history into the totals failed: %s", exc)


def fold(chunk: int = FOLD_CHUNK, every: timedelta = FOLD_EVERY) -> bool:
    """Add the settled rows after the watermark (at most ``chunk`` steps) to the totals (PostgreSQL only).

    Nothing is done when the last fold reached within ``every`` of the settle limit. True if the
    chunk ran out before the settle limit: there is more to fold.
    """
    if connection.vendor != "postgresql":
        return False  # SQLite (one machine, small history): every scrape reads all rows after the null watermark
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL statement_timeout = {FOLD_TIMEOUT_MS}")
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_FOLD_LOCK])
        if not cursor.fetchone()[0]:
            return False  # another web process is folding; this scrape reads the totals as they are
        tallies, watermark = _read_tallies()
        upto, more = _fold_limit(watermark, chunk, every)
        if upto is None:
            return False
        steps = _after(Step.objects, watermark).filter(finished_at__lte=upto)
        executions = _after(Execution.objects, watermark).filter(finished_at__lte=upto)
        added = [("step", k, v) for k, v in _step_rows(steps)]
        added += [("execution", k, v) for k, v in _execution_rows(executions)]
        for family, key, values in added:
            merge(tallies.setdefault(family, {}), key, values)
        _save(tallies, {(family, key) for family, key, _values in added}, upto)
        return more


def _fold_limit(watermark: datetime | None, chunk: int, every: timedelta) -> tuple[datetime | None, bool]:
    """How far this fold goes: the settle limit, or sooner (more to fold) if ``chunk`` steps come first."""
    limit = _db_now() - timedelta(seconds=settings.TRAMA_METRICS_SETTLE_SECONDS)
    if watermark is not None and limit - watermark < every:
        return None, False  # folded a moment ago: leave the few rows since to the scrape's read of the recent rows
    chunk_end = (
        _after(Step.objects, watermark).order_by("finished_at").values_list("finished_at", flat=True)[chunk : chunk + 1]
    )
    upto = min([limit, *chunk_end])
    return (upto if watermark is None or upto > watermark else None), upto < limit


def _db_now() -> datetime:
    with connection.cursor() as cursor:
        cursor.execute("SELECT CURRENT_TIMESTAMP")
        return cursor.fetchone()[0]


def snapshot_watermark() -> datetime | None:
    """Up to which ``finished_at`` the running totals go (None: nothing folded yet)."""
    return _read_tallies()[1]


def _read_tallies() -> tuple[dict, datetime | None]:
    """Every total and the watermark, from one statement (one consistent snapshot)."""
    tallies: dict[str, dict] = {}
    watermark = None
    for key, values in MetricTally.objects.values_list("key", "values"):
        if key == _WATERMARK:
            watermark = datetime.fromisoformat(values["finished_at"])
            continue
        family, *labels = json.loads(key)
        tallies.setdefault(family, {})[tuple(labels)] = values
    return tallies, watermark


def _save(tallies: dict, changed: set[tuple[str, tuple]], upto: datetime) -> None:
    rows = [MetricTally(key=json.dumps([family, *key]), values=tallies[family][key]) for family, key in changed]
    rows.append(MetricTally(key=_WATERMARK, values={"finished_at": upto.isoformat()}))
    MetricTally.objects.bulk_create(rows, update_conflicts=True, unique_fields=["key"], update_fields=["values"])


def _after(manager, watermark: datetime | None):
    finished = manager.filter(finished_at__isnull=False).order_by()
    return finished if watermark is None else finished.filter(finished_at__gt=watermark)


def merge(totals: dict, key: tuple, values: dict) -> None:
    """Add ``values`` (n, sum, le and any other counts) into ``totals[key]``."""
    into = totals.setdefault(key, {})
    for name, v in values.items():
        if isinstance(v, list):
            into[name] = [a + b for a, b in zip(into.get(name) or [0] * len(v), v, strict=True)]
        else:
            into[name] = into.get(name, 0) + v


def _definition_label(prefix: str = ""):
    return Case(
        When(**{f"{prefix}definition__is_inline": True}, then=Value(INLINE)), default=F(f"{prefix}definition__name")
    )


# dispatch/perform's failure of a call that got no usable answer: ``error.failure`` of its step.
_CALL_FAILURES = ["network", "timeout", "egress", "template"]


def _failure_kind():
    """Why a step failed (FAILURE_KINDS in docs/metrics.md): what the call got, or what the engine decided."""
    failed = Q(status="failed")
    return Case(
        When(status="timed_out", then=Value("deadline")),
        When(failed & Q(error__failure__in=_CALL_FAILURES), then=KeyTextTransform("failure", "error")),
        When(failed & Q(response_status__gte=500), then=Value("http_5xx")),
        When(failed & Q(response_status__gte=400), then=Value("http_4xx")),
        When(failed & Q(response_status__isnull=False), then=Value("http_other")),
        When(failed & Q(detail__has_key="callback"), then=Value("callback")),
        When(failed & Q(node_type="fail"), then=Value("fail_node")),
        When(failed & Q(node_type="parallel"), then=Value("branch")),
        When(failed, then=Value("expression")),
        default=Value(""),
        output_field=TextField(),
    )


def _buckets(field: str, bounds: tuple[float, ...]) -> dict:
    return {f"le{i}": Count("id", filter=Q(**{f"{field}__lte": timedelta(seconds=b)})) for i, b in enumerate(bounds)}


def _step_rows(steps) -> list[tuple[tuple, dict]]:
    """Finished steps grouped by (definition, node, node_type, phase, outcome, failure kind)."""
    inline = When(execution__definition__is_inline=True, then=Value(INLINE))
    node = Case(inline, default=F("node_id"), output_field=TextField())
    rows = (
        steps.alias(took=ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField()))
        .annotate(definition=_definition_label("execution__"), node=node, kind=_failure_kind())
        .values("definition", "node", "node_type", "phase", "status", "kind")
        .annotate(
            n=Count("id"),
            retries=Count("id", filter=Q(attempt__gt=1)),
            callbacks=Count("id", filter=Q(detail__has_key="callback")),
            took_sum=Sum("took"),
            **_buckets("took", STEP_BUCKETS),
        )
    )
    labels = ("definition", "node", "node_type", "phase", "status", "kind")
    return [(tuple(r[k] for k in labels), _counts(r, len(STEP_BUCKETS), "retries", "callbacks")) for r in rows]


def _execution_rows(executions) -> list[tuple[tuple, dict]]:
    """Finished executions grouped by (definition, status, branch?), with created-to-finished latency."""
    rows = (
        executions.alias(took=ExpressionWrapper(F("finished_at") - F("created_at"), output_field=DurationField()))
        .annotate(definition_label=_definition_label(), is_branch=Q(parent__isnull=False))
        .values("definition_label", "status", "is_branch")
        .annotate(n=Count("id"), took_sum=Sum("took"), **_buckets("took", EXECUTION_BUCKETS))
    )
    return [
        ((r["definition_label"], r["status"], bool(r["is_branch"])), _counts(r, len(EXECUTION_BUCKETS))) for r in rows
    ]


def _counts(row: dict, buckets: int, *extra: str) -> dict:
    took = row["took_sum"]
    counts = {
        "n": row["n"],
        "sum": took.total_seconds() if took else 0.0,
        "le": [row[f"le{i}"] for i in range(buckets)],
    }
    return counts | {name: row[name] for name in extra}


def _active_counts() -> list[tuple[str, str, bool, int]]:
    """Executions not final, as (definition, status, branch?, count): the status index, never the history."""
    rows = (
        Execution.objects.filter(status__in=ACTIVE_STATUSES)
        .order_by()
        .annotate(definition_label=_definition_label(), is_branch=Q(parent__isnull=False))
        .values("definition_label", "status", "is_branch")
        .annotate(n=Count("id"))
    )
    return [(r["definition_label"], r["status"], bool(r["is_branch"]), r["n"]) for r in rows]
