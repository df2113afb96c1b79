"""Scenario 2 — orchestration overhead: one 10-step saga at a time vs the same 10 calls made directly.

Trama: web + one qcluster (TRAMA_WORKERS=2) + timers, ORM broker. Each
execution is started through the API and runs alone (the next one starts when
this one is final). Baseline: this script makes the same 10 POSTs (same
bodies, an Idempotency-Key each) with one keep-alive requests session.

The service stamps when each step's request arrives. Per step, the gap between
two consecutive arrivals is what one step costs: for Trama the commit of the
previous step, the decision, the rendering and the call; for the baseline the
client's own overhead. "extra ms per step" = median Trama gap - median direct
gap. The start (API request -> first call arrives) is reported apart.

    .venv/bin/python bench/overhead.py --count 300
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    BENCH_ENV,
    FastService,
    Processes,
    broker_env,
    emit,
    free_port,
    fresh_database,
    loadavg,
    percentiles,
    setup_django,
    wait_http,
)
from bench.throughput import chain

STEPS = 10


def run(count: int, broker: str = "orm") -> dict:
    import requests

    arrivals: dict[str, dict[int, float]] = {}
    last = threading.Event()

    def handler(method, path, headers, body):
        now = time.perf_counter()
        key = headers.get("Idempotency-Key") or ""
        run_id, node = key.split(":")[0], key.split(":")[1] if ":" in key else ""
        if node.startswith("s"):
            arrivals.setdefault(run_id, {})[int(node[1:])] = now
            if node == f"s{STEPS}":
                last.set()
        return 200, {"ok": True, "id": "r-1"}

    service = FastService(handler)
    port = free_port()
    db = fresh_database(f"trama_bench_overhead_{broker}")
    env = {**BENCH_ENV, **broker_env(broker, 9), "TRAMA_WORKERS": "2", "TRAMA_PUBLIC_URL": f"http://127.0.0.1:{port}"}
    setup_django(db, **env)
    from definitions.services import store_definition
    from executions.models import FINAL_STATUSES, Execution
    from trama_project.models import ApiToken

    store_definition(chain("saga10", service.url, STEPS))
    _, token = ApiToken.mint("bench")
    procs = Processes({**env, "DATABASE_URL": db})
    procs.start_web(port)
    procs.start("qcluster")
    procs.start("trama_timers")
    api = f"http://127.0.0.1:{port}/api/v1/executions/"
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")

        def trama_one(i: int) -> tuple[str, float]:
            last.clear()
            sent = time.perf_counter()
            r = session.post(api, json={"definition": "saga10", "input": {"order": f"o-{i}"}}, timeout=30)
            execution = r.json()["id"]
            last.wait(30)
            # Wait for the final commit too, so executions never overlap.
            while Execution.objects.filter(pk=execution, status__in=FINAL_STATUSES).count() == 0:
                time.sleep(0.002)
            return execution, sent

        for i in range(10):  # warm-up
            trama_one(-i)
        arrivals.clear()
        load0, cpu0 = loadavg(), procs.cpu_seconds()
        trama = [trama_one(i) for i in range(count)]
        cpu1 = procs.cpu_seconds()

        direct_session = requests.Session()

        def direct_one(i: int) -> tuple[str, float]:
            run_id = f"direct{i}"
            sent = time.perf_counter()
            for step in range(1, STEPS + 1):
                direct_session.post(f"{service.url}/step/{step}", json={"order": f"o-{i}"},
                                    headers={"Idempotency-Key": f"{run_id}:s{step}:1"}, timeout=10)  # fmt: skip
            return run_id, sent

        for i in range(10):
            direct_one(-i - 100)
        direct = [direct_one(i) for i in range(count)]
        load1 = loadavg()

        def stats(runs):
            gaps, starts, totals = [], [], []
            for run_id, sent in runs:
                a = arrivals.get(run_id, {})
                if len(a) != STEPS:
                    continue
                starts.append((a[1] - sent) * 1000)
                totals.append((a[STEPS] - sent) * 1000)
                gaps += [(a[k + 1] - a[k]) * 1000 for k in range(1, STEPS)]
            return gaps, starts, totals

        t_gaps, t_starts, t_totals = stats(trama)
        d_gaps, _d_starts, d_totals = stats(direct)
        return {
            "executions": len(t_totals),
            "trama_step_gap_ms": {k: round(v, 2) for k, v in percentiles(t_gaps).items()},
            "direct_step_gap_ms": {k: round(v, 2) for k, v in percentiles(d_gaps).items()},
            "extra_ms_per_step_median": round(statistics.median(t_gaps) - statistics.median(d_gaps), 2),
            "trama_start_to_first_call_ms_median": round(statistics.median(t_starts), 2),
            "extra_ms_per_step_incl_start": round(
                (statistics.median(t_totals) - statistics.median(d_totals)) / STEPS, 2
            ),
            "cpu_ms_per_execution": round((cpu1 - cpu0) * 1000 / max(1, len(trama)), 2),
            "load": f"{load0:.2f}->{load1:.2f}",
        }
    finally:
        procs.stop()
        service.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=300)
    args = parser.parse_args()
    emit({"scenario": "overhead", **run(args.count)})


if __name__ == "__main__":
    main()
