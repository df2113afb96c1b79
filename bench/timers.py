"""Scenario 4 — timers: N sleeps due at the same second.

Definition: `nap` (sleep `until` a fixed ISO time T a few seconds ahead) ->
`after` (a task). One execution is started with start_execution and driven to
SLEEPING by advance_execution in this process (the real engine); it is then
copied N-1 times server-side (bench.common.clone_execution): N executions in
exactly the state a worker leaves a sleeping execution in, created in a second
instead of N worker round trips. Then one qcluster (TRAMA_WORKERS=2) and one
trama_timers run, and the service stamps when each `after` request arrives.

Lateness = arrival - T. CPU = Trama's processes (qcluster + timers) from T to
the last arrival, per execution.

    .venv/bin/python bench/timers.py --count 5000
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    BENCH_ENV,
    FastService,
    Processes,
    broker_env,
    clone_execution,
    emit,
    fresh_database,
    loadavg,
    percentiles,
    setup_django,
    wait_until,
)

LEAD_S = 8.0


def run(count: int, broker: str, workers: int) -> dict:
    arrivals: list[float] = []

    def handler(method, path, headers, body):
        if path.startswith("/after"):
            arrivals.append(time.time())
        return 200, {"ok": True}

    service = FastService(handler)
    db = fresh_database(f"trama_bench_timers_{broker}")
    env = {**BENCH_ENV, **broker_env(broker, 10), "TRAMA_WORKERS": str(workers)}
    setup_django(db, **env)
    from definitions.services import store_definition
    from executions.models import Execution
    from executions.services import advance_execution, start_execution

    procs = Processes({**env, "DATABASE_URL": db})
    procs.start("qcluster")
    procs.start("trama_timers")
    try:
        # Let the processes boot (Django setup, worker fork) before the due time is fixed.
        warm_step = {"id": "a", "request": {"method": "POST", "url": f"{service.url}/warm"}}
        warm = store_definition({"name": "warm", "kind": "saga", "steps": [warm_step]})
        warm_id = start_execution(warm, {})[0].pk
        wait_until(lambda: Execution.objects.get(pk=warm_id).status == "SUCCEEDED", 60, 0.1)
        due = (datetime.now(UTC) + timedelta(seconds=LEAD_S)).replace(microsecond=0)
        definition = store_definition({
            "name": "nap", "kind": "graph", "start": "nap",
            "nodes": {"nap": {"type": "sleep", "until": due.isoformat(), "next": "after"},
                      "after": {"type": "task", "request": {"method": "POST", "url": f"{service.url}/after"}}},
        })  # fmt: skip
        template = start_execution(definition, {})[0]
        advance_execution(template.pk)
        state = Execution.objects.get(pk=template.pk)
        assert state.status == "SLEEPING", state.status
        clone_execution(template.pk, count - 1)
        ready_s = due.timestamp() - time.time()
        load0 = loadavg()
        wait_until(lambda: time.time() >= due.timestamp(), LEAD_S + 1)
        cpu0 = procs.cpu_seconds()
        wait_until(lambda: len(arrivals) >= count, timeout=max(120, count / 5), interval=0.1)
        cpu1 = procs.cpu_seconds()
        lateness = [a - due.timestamp() for a in arrivals]
        pct = percentiles(lateness, (50, 99)) if lateness else {50: None, 99: None}
        return {
            "broker": broker,
            "workers": workers,
            "executions": count,
            "arrived": len(arrivals),
            "setup_margin_s": round(ready_s, 2),
            "lateness_s": {"p50": round(pct[50], 3), "p99": round(pct[99], 3), "max": round(max(lateness), 3)},
            "cpu_ms_per_execution": round((cpu1 - cpu0) * 1000 / max(1, len(arrivals)), 2),
            "load": f"{load0:.2f}->{loadavg():.2f}",
        }
    finally:
        procs.stop()
        service.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--broker", choices=["orm", "redis"], default="orm")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    emit({"scenario": "timers", **run(args.count, args.broker, args.workers)})


if __name__ == "__main__":
    main()
