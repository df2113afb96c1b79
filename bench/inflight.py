"""Scenario 7 — many executions in flight (issue #15): the 3-call chain against a service that takes its time.

The chain is t1 -> t2 -> t3, three POSTs, each body carrying the id the previous call returned
(t2's body is {"prev": "{{nodes.t1.response.body.id}}"}). The service is bench.common.DelayService
in a child process: it answers every call --delay-ms after it arrived, however many are in flight,
with a new id, and counts the calls whose "prev" it never issued (chain errors, expected 0) and the
most calls in flight at one time. One row per run; the same chain, service and in-flight
concurrency for each system:

- trama: a fresh database, the web server (gunicorn), one qcluster with TRAMA_WORKERS=--workers and
  TRAMA_WORKER_CONCURRENCY=--concurrency (executions in flight per worker process; a Trama that does
  not read it yet keeps one), one trama_timers. --count executions started at once through the API
  (bench.throughput.burst: 8 client threads), until every one is final.
- direct: no orchestration, the floor: --workers x --concurrency threads in this process make the
  same 3 calls for --count chains, each thread with its own keep-alive session.
- dbos: bench/dbos_peer.py --workflow chain3, same options (--workers DBOS processes, each with
  worker_concurrency=--concurrency).

Reported per row: executions/s (first start to last final), CPU per execution of the system's
processes (Trama: web + qcluster + timers, children included), PostgreSQL CPU per execution (the
server processes working for the row's database, bench.common.Sampler), peak resident memory of
each worker process and of all the system's processes together, database bytes per execution after
the run (dead row versions included: autovacuum may be off), and one execution at a time, start ->
final as the client sees it (polling every 2 ms), p50/p99, run before the burst for at most
--sequential executions or --sequential-budget-s seconds.

    .venv/bin/python bench/inflight.py --system trama --broker orm --delay-ms 50 --count 2000 --concurrency 100
    .venv/bin/python bench/inflight.py --system direct --delay-ms 500 --count 2000 --concurrency 100
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    BENCH_ENV,
    DelayService,
    Processes,
    Sampler,
    broker_env,
    emit,
    free_port,
    fresh_database,
    loadavg,
    percentiles,
    qcluster_workers,
    setup_django,
    table_bytes,
    wait_http,
    wait_until,
)
from bench.throughput import burst

CHAIN = ("t1", "t2", "t3")
WARM_UP = 8
CONCURRENCY = 100  # per worker process: 2 x 100 in flight hold a 500 ms service at 133 chains/s


def chain3(url: str) -> dict:
    """Trama's definition of the chain: a saga of the three calls, no compensations (every call succeeds)."""
    steps = []
    for k, step in enumerate(CHAIN):
        body = {"prev": f"{{{{nodes.{CHAIN[k - 1]}.response.body.id}}}}"} if k else {"order": "{{payload.order}}"}
        steps.append({"id": step, "request": {"method": "POST", "url": f"{url}/{step}", "body": body}})
    return {"name": "chain3", "kind": "saga", "steps": steps}


def chain_body(order: str, prev: str | None) -> dict:
    """The body the direct client and DBOS send: what Trama's templates render."""
    return {"prev": prev} if prev else {"order": order}


def chain_handler():
    """The service's answers: a new id per call; a call after t1 must carry an id this service issued."""
    ids = itertools.count(1)  # next() on a count is atomic enough here: the service runs one thread
    issued: set[str] = set()
    errors = [0]

    def handler(method, path, headers, body):
        if path == "/_stats":
            return 200, {"chain_errors": errors[0]}
        step = path.rstrip("/").rsplit("/", 1)[-1]
        if step != CHAIN[0]:
            prev = json.loads(body or b"{}").get("prev")
            if prev not in issued:
                errors[0] += 1
        new = f"{step}-{next(ids)}"
        issued.add(new)
        return 200, {"id": new}

    return handler


def one_at_a_time(run_one: Callable[[int], float], count: int, budget_s: float) -> dict:
    """Run ``run_one(i)`` (returns ms) alone, one after the other, ``count`` times or until ``budget_s``
    has passed (a 500 ms service makes each take 1.5 s); p50/p99 in ms."""
    latencies: list[float] = []
    deadline = time.monotonic() + budget_s
    for i in range(count):
        latencies.append(run_one(i))
        if time.monotonic() > deadline:
            break
    pct = percentiles(latencies, (50, 99))
    return {"n": len(latencies), "p50": round(pct[50], 1), "p99": round(pct[99], 1)}


def memory_columns(sampler: Sampler, worker_pids: list[int]) -> dict:
    return {
        "rss_mb_per_worker": [round(sampler.peak_hwm_kb.get(pid, 0) / 1024) for pid in worker_pids],
        "rss_mb_all_processes": round(sampler.peak_rss_kb / 1024),
    }


def burst_timeout(count: int, delay_ms: float) -> float:
    """Long enough for one execution in flight per worker with a slow service (today's Trama)."""
    return max(120.0, count * (1 + 3 * delay_ms / 1000))


def run_trama(
    broker: str, delay_ms: float, count: int, workers: int, concurrency: int, sequential: int, budget_s: float
) -> dict:
    load_before = loadavg()
    service = DelayService(chain_handler(), delay_ms / 1000)
    port = free_port()
    name = f"trama_bench_inflight_{broker}"
    db = fresh_database(name)
    env = {**BENCH_ENV, **broker_env(broker, 7), "TRAMA_WORKERS": str(workers),
           "TRAMA_WORKER_CONCURRENCY": str(concurrency), "TRAMA_PUBLIC_URL": f"http://127.0.0.1:{port}"}  # fmt: skip
    setup_django(db, **env)
    import requests
    from django.db import connection

    from definitions.services import store_definition
    from executions.models import FINAL_STATUSES, Execution
    from trama_project.models import ApiToken

    store_definition(chain3(service.url))
    _, token = ApiToken.mint("bench")
    procs = Processes({**env, "DATABASE_URL": db})
    procs.start_web(port)
    cluster = procs.start("qcluster")
    procs.start("trama_timers")
    api = f"http://127.0.0.1:{port}/api/v1/executions/"
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"

    def trama_one(i: int) -> float:
        t0 = time.perf_counter()
        r = session.post(api, json={"definition": "chain3", "input": {"order": f"one-{i}"}}, timeout=30)
        final = Execution.objects.filter(pk=r.json()["id"], status__in=FINAL_STATUSES)
        wait_until(final.exists, timeout=60, interval=0.002)
        return (time.perf_counter() - t0) * 1000

    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        warm = burst(api, token, "chain3", WARM_UP, procs, broker, 3, timeout=burst_timeout(WARM_UP, delay_ms))
        if not warm["all_final"]:
            raise RuntimeError("warm-up executions did not finish: are the workers running?")
        one = one_at_a_time(trama_one, sequential, budget_s)
        with connection.cursor() as cursor:  # this process's own polling is not Trama's PostgreSQL work
            cursor.execute("SELECT pg_backend_pid()")
            own_backend = cursor.fetchone()[0]
        service.stats()  # resets the in-flight peak
        sampler = Sampler([p.pid for p in procs.procs], name, exclude={own_backend}).start()
        row = burst(api, token, "chain3", count, procs, broker, 3, timeout=burst_timeout(count, delay_ms))
        sampler.stop()
        stats = service.stats()
        done = max(1, row["succeeded"])
        return {
            "system": "trama",
            "broker": broker,
            **setting(delay_ms, workers, concurrency),
            "in_flight_peak": stats["in_flight_peak"],
            **{k: row[k] for k in ("executions", "succeeded", "all_final", "elapsed_s", "executions_per_s")},
            "cpu_ms_per_execution": row["cpu_ms_per_execution"],
            "cpu_ms_per_execution_by_process": row["cpu_ms_per_execution_by_process"],
            "pg_cpu_ms_per_execution": round(sampler.pg_cpu_s * 1000 / done, 2),
            **memory_columns(sampler, qcluster_workers(sampler.table, cluster.pid, workers)),
            "db_bytes_per_execution": round(
                table_bytes("executions_execution", "executions_step", "django_q_ormq", "django_q_task")
                / Execution.objects.count()
            ),
            "one_at_a_time_ms": one,
            "chain_errors": stats["chain_errors"],
            "load": f"{load_before:.2f}->{loadavg():.2f}",
        }
    finally:
        procs.stop()
        service.stop()


def run_direct(delay_ms: float, count: int, workers: int, concurrency: int, sequential: int, budget_s: float) -> dict:
    load_before = loadavg()
    service = DelayService(chain_handler(), delay_ms / 1000)
    import requests

    local = threading.local()

    def direct_one(i: int) -> float:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        t0 = time.perf_counter()
        prev = None
        for step in CHAIN:
            r = local.session.post(f"{service.url}/{step}", json=chain_body(f"o-{i}", prev), timeout=30)
            r.raise_for_status()
            prev = r.json()["id"]
        return (time.perf_counter() - t0) * 1000

    try:
        for i in range(WARM_UP):
            direct_one(-i)
        one = one_at_a_time(direct_one, sequential, budget_s)
        service.stats()
        cpu0, t0 = time.process_time(), time.perf_counter()
        with ThreadPoolExecutor(workers * concurrency) as pool:
            list(pool.map(direct_one, range(count)))
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        stats = service.stats()
        return {
            "system": "direct",
            **setting(delay_ms, workers, concurrency),
            "in_flight_peak": stats["in_flight_peak"],
            "executions": count,
            "succeeded": count,
            "all_final": True,
            "elapsed_s": round(elapsed, 2),
            "executions_per_s": round(count / elapsed, 1),
            "cpu_ms_per_execution": round(cpu * 1000 / count, 2),  # the client threads' CPU
            "one_at_a_time_ms": one,
            "chain_errors": stats["chain_errors"],
            "load": f"{load_before:.2f}->{loadavg():.2f}",
        }
    finally:
        service.stop()


def setting(delay_ms: float, workers: int, concurrency: int) -> dict:
    return {"delay_ms": delay_ms, "workers": workers, "concurrency": concurrency, "in_flight": workers * concurrency}


def add_options(parser: argparse.ArgumentParser, concurrency: int | None = CONCURRENCY) -> None:
    """The options every system of this scenario takes (bench/dbos_peer.py --workflow chain3 too)."""
    parser.add_argument("--delay-ms", type=float, default=50, help="the service answers each call this late")
    parser.add_argument("--count", type=int, default=2000, help="executions started at once")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--concurrency", type=int, default=concurrency, help="executions in flight per worker process")
    parser.add_argument("--sequential", type=int, default=200, help="one-at-a-time executions (at most)")
    parser.add_argument("--sequential-budget-s", type=float, default=60, help="...or for at most this long")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--system", choices=["trama", "direct"], default="trama")
    parser.add_argument("--broker", choices=["orm", "redis"], default="orm")
    add_options(parser)
    a = parser.parse_args()
    common = (a.delay_ms, a.count, a.workers, a.concurrency, a.sequential, a.sequential_budget_s)
    result = run_trama(a.broker, *common) if a.system == "trama" else run_direct(*common)
    emit({"scenario": "inflight", **result})


if __name__ == "__main__":
    main()
