"""The cost of a /metrics scrape with 10 million step rows (issue #18).

Fills a database of its own with N executions of 4 steps each, finished over
the last 30 days (generate_series, server-side), then times the database part
of a scrape (executions.metrics.query_snapshot, the cache off):

1. catch-up: the first scrapes after an upgrade fold the history into the
   running totals, FOLD_CHUNK steps per scrape;
2. steady state: the totals plus the rows of the settle window;
3. the same with a settle window's worth of fresh rows (``--fresh``, e.g. 60 s
   at 800 steps/s).

Prints numbers and the load average; asserts nothing.

    .venv/bin/python bench/metrics_scrape.py --steps 10000000
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import PG, emit, fresh_database, loadavg, machine_line, setup_django

STEPS_PER_EXECUTION = 4
DEFINITIONS = ("orders", "refunds", "signup", "billing", "shipping")


def fill(executions: int) -> None:
    """``executions`` finished executions spread over 30 days, 4 steps each (5 % failed), server-side."""
    from django.db import connection

    from definitions.models import Definition

    ids = []
    for name in DEFINITIONS:
        nodes = {f"n{i}": {"type": "task"} for i in range(1, STEPS_PER_EXECUTION + 1)}
        spec = {"name": name, "kind": "graph", "start": "n1", "nodes": nodes}
        stored = Definition.objects.create(name=name, version=1, kind="graph", source=spec, spec=spec, digest=name)
        ids.append(stored.pk)
    with connection.cursor() as cursor, without_secondary_indexes(cursor):
        cursor.execute(
            """
            INSERT INTO executions_execution (id, definition_id, branch, status, input, state, fence,
                request_digest, created_by, created_at, started_at, finished_at, updated_at)
            SELECT gen_random_uuid(), (%(ids)s::bigint[])[1 + i %% 5], '',
                   CASE WHEN i %% 20 = 0 THEN 'COMPENSATED' ELSE 'SUCCEEDED' END, '{}', '{}', 1, '', '',
                   t, t, t + interval '400 ms', t + interval '400 ms'
            FROM generate_series(1, %(n)s) i,
                 LATERAL (SELECT now() - interval '5 minutes' - interval '30 days' * (i::float / %(n)s)) AS c(t)
            """,
            {"ids": ids, "n": executions},
        )
        cursor.execute(
            """
            INSERT INTO executions_step (execution_id, seq, node_id, node_type, phase, attempt, status,
                response_status, started_at, finished_at)
            SELECT e.id, s, 'n' || s, 'task', 'forward', 1,
                   CASE WHEN e.status = 'COMPENSATED' AND s = 4 THEN 'failed' ELSE 'succeeded' END,
                   CASE WHEN e.status = 'COMPENSATED' AND s = 4 THEN 503 ELSE 200 END,
                   e.created_at + (s - 1) * interval '100 ms', e.created_at + s * interval '100 ms'
            FROM executions_execution e, generate_series(1, %(k)s) s
            """,
            {"k": STEPS_PER_EXECUTION},
        )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE executions_execution; ANALYZE executions_step")


@contextmanager
def without_secondary_indexes(cursor):
    """A bulk load: no foreign-key checks, and the plain indexes built once at the end, not row by row."""
    tables = ("executions_execution", "executions_step")
    cursor.execute(
        "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename = ANY(%s) AND NOT EXISTS "
        "(SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)",
        [list(tables)],
    )
    indexes = cursor.fetchall()
    for name, _ in indexes:
        cursor.execute(f'DROP INDEX "{name}"')
    cursor.execute("SET session_replication_role = replica")  # skips the foreign-key triggers (superuser)
    yield
    cursor.execute("SET session_replication_role = DEFAULT")
    for _, definition in indexes:
        cursor.execute(definition)


def fresh_rows(steps: int) -> None:
    """A settle window's worth of rows finished just now: the part every scrape reads."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH e AS (SELECT id, created_at FROM executions_execution ORDER BY created_at DESC LIMIT %s)
            INSERT INTO executions_step (execution_id, seq, node_id, node_type, phase, attempt, status,
                response_status, started_at, finished_at)
            SELECT e.id, 100 + s, 'n' || s, 'task', 'forward', 1, 'succeeded', 200,
                   now() - interval '20 ms', now()
            FROM e, generate_series(1, %s) s
            """,
            [steps // STEPS_PER_EXECUTION, STEPS_PER_EXECUTION],
        )


def timed_scrape() -> float:
    from executions.metrics import query_snapshot

    began = time.monotonic()
    query_snapshot()
    return time.monotonic() - began


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=10_000_000)
    parser.add_argument("--fresh", type=int, default=48_000, help="steps finished within the settle window")
    parser.add_argument("--database", default="trama_bench_metrics")
    parser.add_argument("--reuse", action="store_true", help="keep the rows of an earlier run, fold them again")
    args = parser.parse_args()
    url = f"{PG}/{args.database}" if args.reuse else fresh_database(args.database)
    setup_django(url, TRAMA_METRICS_CACHE_SECONDS="0")
    print(machine_line(), flush=True)

    from executions.models import MetricTally, Step

    began = time.monotonic()
    if args.reuse:
        MetricTally.objects.all().delete()
        Step.objects.filter(seq__gt=100).delete()  # an earlier run's fresh rows
    else:
        fill(args.steps // STEPS_PER_EXECUTION)
    print(f"filled {args.steps} steps in {time.monotonic() - began:.0f} s (load {loadavg():.1f})", flush=True)

    catch_up = [timed_scrape()]
    while behind():
        catch_up.append(timed_scrape())
    print(f"catch-up: {len(catch_up)} scrapes, max {max(catch_up):.2f} s, total {sum(catch_up):.1f} s", flush=True)

    steady = [timed_scrape() for _ in range(5)]
    print(f"steady: median {statistics.median(steady):.3f} s, max {max(steady):.3f} s (load {loadavg():.1f})")
    fresh_rows(args.fresh)
    tail = [timed_scrape() for _ in range(5)]
    print(f"+{args.fresh} fresh steps: median {statistics.median(tail):.3f} s, max {max(tail):.3f} s "
          f"(load {loadavg():.1f})")  # fmt: skip
    emit({"scenario": "metrics_scrape", "steps": args.steps, "fresh": args.fresh, "catch_up_scrapes": len(catch_up),
          "catch_up_max_s": max(catch_up), "steady_median_s": statistics.median(steady),
          "fresh_median_s": statistics.median(tail), "load": loadavg()})  # fmt: skip


def behind() -> bool:
    """True while the running totals stop short of the settle window (the history is still being folded in)."""
    from datetime import timedelta

    from django.conf import settings
    from django.utils import timezone

    from executions import tallies

    watermark = tallies.snapshot_watermark()
    settled = timezone.now() - timedelta(seconds=settings.TRAMA_METRICS_SETTLE_SECONDS + 10)
    return watermark is None or watermark < settled


if __name__ == "__main__":
    main()
