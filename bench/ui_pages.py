"""Every page of the operator console with 100,000 executions in the database (issue #17: each under 300 ms).

A database of its own, filled by tests/support/history.load_executions (the rows
tests/test_ui_list_plans.py checks the plans on: 100,000 root executions over 60
days on 3 definitions, 2,000 branch executions), then three executions run for real
by a qcluster and the timer loop against a local service, for pages with steps to
draw: a saga that fails and compensates, a parallel node with three branches, and
a 50-step chain. Each is a second version of one of the 3 definitions, so the diff
page has two versions to compare. ANALYZE, and no vacuum (autovacuum off for the
table): the GIN index on input keeps its full pending list, the worst state
between two vacuums, the same in every run. Then:

* the web process as deployed: gunicorn with deploy/gunicorn.conf.py (2 workers,
  gthread), a staff user logged in through the admin's login form (a real session
  cookie), every page requested ``--repeat`` times after ``--warmup`` requests, one
  keep-alive connection, one request at a time;
* SQL statements per page, from one in-process request (django.test.Client) inside
  CaptureQueriesContext: a count that grows with the rows shown is an N+1.

Prints a table (p50, p95, max ms, the server's CPU ms per request, bytes, SQL
statements, the 1-minute load when the page was measured) and the verdict against
300 ms at p95; asserts nothing. docs/benchmarks.md explains the columns.

    .venv/bin/python bench/ui_pages.py [--repeat 20]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    BENCH_ENV,
    PYTHON,
    REPO,
    Processes,
    emit,
    free_port,
    fresh_database,
    loadavg,
    machine_line,
    percentiles,
    postgres_pids,
    proc_table,
    setup_django,
    wait_http,
    wait_until,
)

TARGET_MS = 300.0
USER, PASSWORD = "bench-operator", "bench-operator-password"


# --- The database ---------------------------------------------------------------------------------


def second_versions(url: str) -> dict[str, object]:
    """Version 2 of each definition of the history: what the three real executions run."""
    from definitions.services import store_definition

    def call(path: str, **extra) -> dict:
        return {"type": "task", "request": {"method": "POST", "url": f"{url}{path}"}} | extra

    steps = [f"s{i:02d}" for i in range(1, 51)]
    graphs = {
        # reserve, then charge fails twice (a retry between): reserve's compensation runs.
        "orders": {
            "reserve": call("/reserve", next="charge", compensation={"method": "POST", "url": f"{url}/unreserve"}),
            "charge": call("/charge", retry={"max_attempts": 2, "backoff_s": 0.2}, next="ship"),
            "ship": call("/ship"),
        },
        "billing": {
            "open": call("/open", next="fork"),
            "fork": {"type": "parallel", "branches": ["tax", "invoice", "ledger"], "next": "close"},
            "tax": call("/tax", next="tax_check"),
            "tax_check": call("/tax-check"),
            "invoice": call("/invoice"),
            "ledger": call("/ledger"),
            "close": call("/close"),
        },
        "shipping": {s: call(f"/{s}", **({"next": steps[i + 1]} if i + 1 < len(steps) else {}))
                     for i, s in enumerate(steps)},
    }  # fmt: skip
    return {
        name: store_definition({"name": name, "kind": "graph", "start": next(iter(nodes)), "nodes": nodes})
        for name, nodes in graphs.items()
    }


def run_real_executions(env: dict[str, str], service_url: str) -> dict[str, str]:
    """Start one execution of each second version and let a real qcluster and timer loop finish them."""
    from executions.models import FINAL_STATUSES, Execution
    from executions.services import start_execution

    defs = second_versions(service_url)
    procs = Processes(env)
    procs.start("qcluster")
    procs.start("trama_timers")
    try:
        started = {
            label: start_execution(defs[name], {"orderId": f"REAL-{label}", "customer": {"id": 7}})[0].pk
            for label, name in (("saga, compensated", "orders"), ("parallel", "billing"), ("50 steps", "shipping"))
        }
        done = wait_until(
            lambda: Execution.objects.filter(pk__in=started.values(), status__in=FINAL_STATUSES).count() == 3,
            timeout=180,
            interval=0.5,
        )
        if not done:
            states = dict(Execution.objects.filter(pk__in=started.values()).values_list("pk", "status"))
            raise RuntimeError(f"the real executions did not finish: {states}")
    finally:
        procs.stop()
    return {label: str(pk) for label, pk in started.items()}


def fill(service_url: str, env: dict[str, str]) -> dict[str, str]:
    """The history, the real executions, a staff user; ANALYZE. Returns the executions whose pages are opened."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from executions.models import Execution
    from tests.support.history import load_executions

    began = time.monotonic()
    load_executions()
    executions = run_real_executions(env, service_url)
    parent = Execution.objects.filter(parent__isnull=False, steps__isnull=True).values_list("parent_id", flat=True)
    if parent.first() is not None:  # a loaded WAITING root with its 'audit' branch (no steps)
        executions["loaded row with a branch"] = str(parent.first())
    get_user_model().objects.create_superuser(USER, "bench@example.com", PASSWORD)
    with connection.cursor() as cursor:
        # No vacuum, before or during the run: the GIN index on input keeps its pending list full (the
        # worst state between two vacuums; docs/benchmarks.md) and every run measures the same state.
        cursor.execute("ALTER TABLE executions_execution SET (autovacuum_enabled = false)")
        cursor.execute("ANALYZE")
    print(f"# filled in {time.monotonic() - began:.0f} s (load {loadavg():.2f})", flush=True)
    return executions


# --- The pages ------------------------------------------------------------------------------------


def deep_cursor() -> str:
    """A page link 30 days into the history: a keyset page far from the first."""
    from executions.models import Execution
    from graph_editor.listing import cursor_of

    roots = Execution.objects.filter(parent__isnull=True).order_by("-created_at", "-id")
    return cursor_of(roots[50_000])


def pages(executions: dict[str, str]) -> list[tuple[str, str]]:
    """(label, path) of every page measured."""
    from tests.support.history import FILTERS

    out = [("dashboard", "/")]
    out += [(f"list {q or '(no filter)'}", f"/ui/executions/?{q}") for q in FILTERS]
    out += [("list, page 1,001 (cursor)", f"/ui/executions/?after={deep_cursor()}"),
            ("list ?partial=1 (auto-refresh)", "/ui/executions/?partial=1"),
            ("list ?partial=1&status=FAILED", "/ui/executions/?partial=1&status=FAILED")]  # fmt: skip
    for label, pk in executions.items():
        out += [(f"execution: {label}", f"/ui/executions/{pk}/"),
                (f"execution data: {label}", f"/ui/executions/{pk}/data/")]  # fmt: skip
    out += [
        ("definitions", "/ui/definitions/"),
        ("definition orders (latest)", "/ui/definitions/orders/"),
        ("definition shipping v2 (50 nodes)", "/ui/definitions/shipping/2/"),
        ("editor, new", "/ui/editor/"),
        ("editor orders", "/ui/editor/orders/"),
        ("editor ?simulate=<execution>", f"/ui/editor/orders/2/?simulate={next(iter(executions.values()))}"),
        ("diff orders", "/ui/definitions/orders/diff/"),
        ("start form orders v2", "/ui/definitions/orders/2/start/"),
        ("404: no such execution", f"/ui/executions/{uuid.uuid4()}/"),
        ("404: no such page", "/ui/nothing-here/"),
    ]
    return out


def query_counts(paths: list[str]) -> dict[str, tuple[int, int]]:
    """(status, SQL statements) of each page, requested once in this process as the logged-in user."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(get_user_model().objects.get(username=USER))
    out = {}
    for path in paths:
        client.get(path)  # once before: the session row and per-process caches are not the page's queries
        with CaptureQueriesContext(connection) as queries:
            status = client.get(path).status_code
        out[path] = (status, len(queries))
    return out


def login(base: str):
    """A requests session holding the admin's session cookie, logged in through the login form."""
    import requests

    session = requests.Session()
    session.get(f"{base}/admin/login/", timeout=30)
    answer = session.post(
        f"{base}/admin/login/?next=/",
        data={"username": USER, "password": PASSWORD, "csrfmiddlewaretoken": session.cookies["csrftoken"]},
        headers={"Referer": f"{base}/admin/login/"},
        timeout=30,
    )
    if "sessionid" not in session.cookies or answer.status_code != 200:
        raise RuntimeError(f"login failed: {answer.status_code} {answer.url}")
    return session


def server_cpu_s(web_pid: int, database: str) -> dict[int, float]:
    """CPU seconds so far of each process serving the pages: gunicorn's (its session) and the PostgreSQL
    backends connected to ``database`` (not the server's shared background processes, which work for
    every database on it)."""
    table = proc_table()
    mine = {pid: info.cpu_s for pid, info in table.items() if info.session == web_pid}
    for pid in postgres_pids(table, database):
        with contextlib.suppress(OSError):
            if database.encode() in Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").split():
                mine[pid] = table[pid].cpu_s
    return mine


def measure(session, base: str, path: str, repeat: int, warmup: int, cpu: Callable[[], dict[int, float]]) -> dict:
    """Wall times of ``repeat`` requests, and the server's CPU per request (steadier than wall on a shared
    machine: time spent waiting for a core is not in it)."""
    for _ in range(warmup):
        session.get(base + path, timeout=60)
    times, size, status = [], 0, 0
    load = loadavg()
    cpu_before = cpu()
    for _ in range(repeat):
        began = time.perf_counter()
        response = session.get(base + path, timeout=60)
        size = len(response.content)  # read in full inside the timing: the whole answer
        times.append((time.perf_counter() - began) * 1000)
        status = response.status_code
    cpu_after = cpu()
    used = sum(after - cpu_before.get(pid, 0.0) for pid, after in cpu_after.items())
    pct = percentiles(times, (50, 95))
    return {"status": status, "p50_ms": round(pct[50], 1), "p95_ms": round(pct[95], 1),
            "max_ms": round(max(times), 1), "mean_ms": round(statistics.mean(times), 1), "bytes": size,
            "cpu_ms": round(used * 1000 / repeat, 1), "load": round((load + loadavg()) / 2, 2)}  # fmt: skip


def start_web(env: dict[str, str], port: int) -> Processes:
    """gunicorn as deploy/Procfile starts it (deploy/gunicorn.conf.py: 2 workers x 8 threads)."""
    procs = Processes(env)
    command = [PYTHON, "-m", "gunicorn", "trama_project.wsgi", "-c", "deploy/gunicorn.conf.py",
               "--bind", f"127.0.0.1:{port}"]  # fmt: skip
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    procs.procs.append(subprocess.Popen(command, cwd=REPO, env=procs.env, start_new_session=True, **quiet))
    return procs


def table(rows: list[dict]) -> str:
    lines = ["| page | status | p50 ms | p95 ms | max ms | server CPU ms | bytes | SQL | load (1 min) |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        over = " **over**" if r["p95_ms"] > TARGET_MS else ""
        lines.append(
            f"| {r['page']} | {r['status']} | {r['p50_ms']} | {r['p95_ms']}{over} | {r['max_ms']} "
            f"| {r['cpu_ms']} | {r['bytes']:,} | {r['queries']} | {r['load']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=20, help="timed requests per page")
    parser.add_argument("--warmup", type=int, default=3, help="untimed requests per page before")
    parser.add_argument("--database", default="trama_bench_ui")
    args = parser.parse_args()
    print(machine_line(), flush=True)
    url = fresh_database(args.database)
    port = free_port()
    env = os.environ | BENCH_ENV | {"DATABASE_URL": url, "TRAMA_BROKER_URL": "",
                                    "TRAMA_PUBLIC_URL": f"http://127.0.0.1:{port}"}  # fmt: skip
    setup_django(url, **{k: v for k, v in env.items() if k.startswith("TRAMA_")})
    from tests.support.service import Reply, TestService

    service = TestService().start()
    service.default("POST", "/charge", Reply(503, {"error": "card declined"}))
    try:
        executions = fill(service.url, env)
    finally:
        service.stop()
    measured = pages(executions)
    counts = query_counts([path for _, path in measured])
    base = f"http://127.0.0.1:{port}"
    web = start_web(env, port)
    rows = []
    try:
        wait_http(f"{base}/healthz", timeout=120)
        session = login(base)
        for label, path in measured:
            cpu = partial(server_cpu_s, web.procs[0].pid, args.database)
            row = {"page": label, "path": path, **measure(session, base, path, args.repeat, args.warmup, cpu)}
            row["queries"] = counts[path][1]
            rows.append(row)
            print(f"# {label}: p95 {row['p95_ms']} ms (load {row['load']:.2f})", file=sys.stderr, flush=True)
    finally:
        web.stop()
    print(table(rows))
    worst = max(rows, key=lambda r: r["p95_ms"])
    over = [r["page"] for r in rows if r["p95_ms"] > TARGET_MS]
    verdict = "met" if not over else f"NOT met ({', '.join(over)})"
    print(f"\nEvery page under {TARGET_MS:.0f} ms at p95: {verdict}; slowest {worst['page']} "
          f"p95 {worst['p95_ms']} ms; {len(rows)} pages x {args.repeat} requests; load {loadavg():.2f}")  # fmt: skip
    emit({"scenario": "ui_pages", "repeat": args.repeat, "pages": rows, "target_ms": TARGET_MS,
          "over_target": over, "slowest": worst, "load": round(loadavg(), 2)})  # fmt: skip


if __name__ == "__main__":
    main()
