"""Profile of the hot path, in-process: what one finished 3-step chain costs, and where.

A fresh database, the fast service in a child process (its CPU is not ours),
N executions of a 3-step chain started with executions.services.start_execution,
then executions.services.advance_execution called on each in a loop in this
process — exactly what a django-q worker runs per task, minus django-q.

Prints:
* the SQL of one execution (start, then advance), from CaptureQueriesContext;
* CPU (this thread) and wall ms per execution for start and for advance;
* inclusive CPU ms per execution of named components (they nest, so they do
  not add up), from a cProfile run with a CPU clock;
* the top functions by own (tottime) CPU.

    .venv/bin/python bench/profile_hot_path.py --count 300 [--pstats /tmp/advance.pstats]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import BENCH_ENV, FastService, emit, fresh_database, loadavg, setup_django
from bench.throughput import chain, ok_handler

# (label, file path fragment, function name): inclusive time of these functions = the component's cost.
COMPONENTS = [
    ("SQL round trips (psycopg execute, incl. wait)", "psycopg/cursor.py", "execute"),
    ("ORM compile (SQLCompiler.as_sql)", "django/db/models/sql/compiler.py", "as_sql"),
    ("ORM execute_sql (compile+execute+fetch)", "django/db/models/sql/compiler.py", "execute_sql"),
    ("transaction.atomic enter+exit", "django/db/transaction.py", "__enter__|__exit__"),
    ("model instances (Model.__init__/from_db)", "django/db/models/base.py", "__init__|from_db"),
    ("JSONField adapt / from_db_value", "django/db/models/fields/json.py", "get_db_prep_value|from_db_value"),
    ("json.dumps", "json/__init__.py", "dumps"),
    ("json.loads", "json/__init__.py", "loads"),
    ("copy.deepcopy", "copy.py", "deepcopy"),
    ("machine.decide (incl. its state copy)", "executions/machine", "decide"),
    ("templating.render", "definitions/templating.py", "render"),
    ("dispatch.send (whole HTTP call)", "executions/dispatch.py", "send"),
    ("egress.resolve (DNS + checks)", "executions/egress.py", "resolve"),
    ("requests Session.send", "requests/sessions.py", "send"),
    ("requests prepare_request", "requests/sessions.py", "prepare_request"),
    ("logging (Logger._log)", "logging/__init__.py", "_log"),
    ("telemetry hooks", "executions/telemetry.py", "committed|call_started|call_finished|trace_headers"),
    ("django-q async_task (enqueue)", "django_q/tasks.py", "async_task"),
    ("django-q signing/pickling", "django_q/signing.py", "dumps"),
    (
        "connection setup/health check",
        "django/db/backends/base/base.py",
        "ensure_connection|connect|is_usable|close_if_unusable_or_obsolete",
    ),
    ("claim_execution", "executions/services", "claim_execution"),
    ("_Run._commit (write decision + steps)", "executions/services", "_commit"),
    ("write_steps (Step bulk_create + updates)", "executions/services", "_?write_steps"),
    (
        "on_commit callbacks (run_and_clear_commit_hooks)",
        "django/db/backends/base/base.py",
        "run_and_clear_commit_hooks",
    ),
]


def serve() -> None:
    service = FastService(ok_handler)
    print(service.url, flush=True)
    sys.stdin.read()  # until the parent closes it


def inclusive_ms(stats: pstats.Stats, path: str, names: str, per: int) -> float:
    """Inclusive time of matching functions, counting only calls not made from inside another match."""
    pattern = re.compile(f"^({names})$")
    matches = {k for k in stats.stats if path in k[0] and pattern.match(k[2])}
    total = 0.0
    for key in matches:
        _cc, _nc, _tt, _ct, callers = stats.stats[key]
        for caller, (_c1, _c2, _t1, ct) in callers.items():
            if caller not in matches:
                total += ct
    return total * 1000 / per


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--pstats", help="write the advance profile here (for snakeviz / pstats)")
    parser.add_argument("--print-sql", action="store_true")
    parser.add_argument("--api-only", action="store_true", help="only the API start request")
    args = parser.parse_args()
    if args.serve:
        serve()
        return
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    url = child.stdout.readline().strip()
    try:
        db = fresh_database("trama_bench_profile")
        setup_django(db, **BENCH_ENV, TRAMA_BROKER_URL="")
        result = api_only(url, args.count) if args.api_only else profile(url, args.count, args.pstats, args.print_sql)
        emit({"scenario": "profile", **result})
    finally:
        child.stdin.close()
        child.wait(5)


def api_only(url: str, count: int) -> dict:
    from definitions.services import store_definition

    store_definition(chain("chain3", url, 3))
    return {"api_start": profile_api_start(count), "load": f"{loadavg():.2f}"}


def profile(url: str, count: int, pstats_path: str | None, print_sql: bool) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from definitions.services import store_definition
    from executions.models import Execution
    from executions.services import advance_execution, start_execution

    definition = store_definition(chain("chain3", url, 3))
    # Warm-up (imports, the HTTP pool, the database connection), not measured.
    for i in range(5):
        advance_execution(start_execution(definition, {"order": f"w-{i}"})[0].pk)

    # The SQL of one execution.
    with CaptureQueriesContext(connection) as start_q:
        execution, _ = start_execution(definition, {"order": "q-1"})
    with CaptureQueriesContext(connection) as advance_q:
        advance_execution(execution.pk)
    # Copied now: captured_queries is a slice of a bounded log, evaluated when read.
    start_sql, advance_sql = list(start_q.captured_queries), list(advance_q.captured_queries)
    assert Execution.objects.get(pk=execution.pk).status == "SUCCEEDED"
    kinds = Counter(q["sql"].split()[0].upper() for q in advance_sql)
    if print_sql:
        for q in start_sql + advance_sql:
            print(f"  {q['time']}s  {q['sql'][:160]}", file=sys.stderr)

    # Starts: CPU and wall per start_execution (the API adds its own cost on top).
    t0, c0 = time.perf_counter(), time.thread_time()
    ids = [start_execution(definition, {"order": f"o-{i}"})[0].pk for i in range(count)]
    start_wall, start_cpu = (time.perf_counter() - t0) * 1000 / count, (time.thread_time() - c0) * 1000 / count

    # Advance without the profiler: the real cost.
    half = count // 2
    t0, c0 = time.perf_counter(), time.thread_time()
    for pk in ids[:half]:
        advance_execution(pk)
    adv_wall, adv_cpu = (time.perf_counter() - t0) * 1000 / half, (time.thread_time() - c0) * 1000 / half

    # Advance under cProfile with a CPU clock: where that CPU goes.
    profiler = cProfile.Profile(time.thread_time)
    profiler.enable()
    for pk in ids[half:]:
        advance_execution(pk)
    profiler.disable()
    n = count - half
    if pstats_path:
        profiler.dump_stats(pstats_path)
    stats = pstats.Stats(profiler)
    profiled_total = sum(v[2] for v in stats.stats.values()) * 1000 / n
    components = {label: round(inclusive_ms(stats, path, names, n), 3) for label, path, names in COMPONENTS}
    top = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:25]
    top_own = [
        {"function": f"{Path(k[0]).name}:{k[1]}:{k[2]}", "own_ms_per_execution": round(v[2] * 1000 / n, 3),
         "calls_per_execution": round(v[1] / n, 1)}
        for k, v in top
    ]  # fmt: skip
    # Profile of starts (start_execution incl. the django-q enqueue).
    sprof = cProfile.Profile(time.thread_time)
    sprof.enable()
    for i in range(count // 2):
        start_execution(definition, {"order": f"p-{i}"})
    sprof.disable()
    sstats = pstats.Stats(sprof)
    start_components = {
        label: round(inclusive_ms(sstats, path, names, count // 2), 3)
        for label, path, names in COMPONENTS
        if inclusive_ms(sstats, path, names, count // 2) > 0.01
    }
    api = profile_api_start(min(count, 200))
    return {
        "executions": count,
        "queries_start": len(start_sql),
        "queries_advance_3_steps": len(advance_sql),
        "queries_advance_by_kind": dict(kinds),
        "sql_start": [q["sql"][:140] for q in start_sql],
        "sql_advance": [q["sql"][:140] for q in advance_sql],
        "start_ms": {"cpu": round(start_cpu, 3), "wall": round(start_wall, 3)},
        "advance_ms": {"cpu": round(adv_cpu, 3), "wall": round(adv_wall, 3)},
        "advance_profiled_cpu_ms": round(profiled_total, 3),
        "advance_components_cpu_ms": components,
        "start_components_cpu_ms": start_components,
        "advance_top_own_cpu": top_own,
        "api_start": api,
        "load": f"{loadavg():.2f}",
    }


API_COMPONENTS = [
    ("whole request (Client.post -> WSGI handler)", "django/core/handlers/base.py", "get_response"),
    ("middleware before the view (incl. prometheus, sessions, csrf)", "django/utils/deprecation.py", "__call__"),
    ("DRF authentication (Bearer token lookup)", "trama_project/authentication.py", "authenticate"),
    ("DRF parse + ExecutionStartSerializer.is_valid", "rest_framework/serializers.py", "is_valid"),
    ("definition lookup (_resolve_definition)", "executions/api/views.py", "_resolve_definition"),
    ("start_execution (INSERT + enqueue)", "executions/services", "start_execution"),
    ("ExecutionSerializer(...).data (the 202 body)", "rest_framework/serializers.py", "data"),
    ("JSONRenderer.render", "rest_framework/renderers.py", "render"),
    ("ORM compile (SQLCompiler.as_sql)", "django/db/models/sql/compiler.py", "as_sql"),
    ("SQL round trips (psycopg execute)", "psycopg/cursor.py", "execute"),
    ("django-q async_task (enqueue)", "django_q/tasks.py", "async_task"),
    ("logging (Logger._log)", "logging/__init__.py", "_log"),
]


def profile_api_start(count: int) -> dict:
    """POST /api/v1/executions/ through Django's test client (no HTTP server): queries, CPU, components."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from trama_project.models import ApiToken

    _, token = ApiToken.mint("bench-profile")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_HOST="127.0.0.1")

    def post(i):
        r = client.post("/api/v1/executions/", {"definition": "chain3", "input": {"order": f"a-{i}"}},
                        content_type="application/json")  # fmt: skip
        assert r.status_code == 202, r.content

    for i in range(5):
        post(-i)
    with CaptureQueriesContext(connection) as q:
        post(0)
    sql = list(q.captured_queries)
    c0 = time.thread_time()
    for i in range(count):
        post(i)
    cpu = (time.thread_time() - c0) * 1000 / count
    prof = cProfile.Profile(time.thread_time)
    prof.enable()
    for i in range(count):
        post(i)
    prof.disable()
    st = pstats.Stats(prof)
    return {
        "queries": len(sql),
        "sql": [x["sql"][:120] for x in sql],
        "cpu_ms": round(cpu, 3),
        "profiled_cpu_ms": round(sum(v[2] for v in st.stats.values()) * 1000 / count, 3),
        "components_cpu_ms": {
            label: round(inclusive_ms(st, path, names, count), 3) for label, path, names in API_COMPONENTS
        },
    }


if __name__ == "__main__":
    main()
    sys.stdout.flush()
