"""Scenario 5 — waiting at scale: N executions WAITING on a callback that never comes.

Definition: `pay` (async_task; the service answers 202 and never calls back;
timeout 1 day) -> `ship` (task). One execution is started and driven by
advance_execution in this process (the real engine, the real service answer)
to WAITING with the request acknowledged; it is then copied N-1 times
server-side (bench.common.clone_execution), so every row is exactly what a
worker leaves. Reported: database bytes per waiting execution
(pg_total_relation_size of executions_execution + executions_step, after
VACUUM, divided by N).

Also the size of a finished 5-step saga: one is run to SUCCEEDED the same way
and copied 10,000 times; bytes = growth of the two tables / 10,000 (live rows,
after VACUUM; a row updated by workers also leaves dead versions until
autovacuum, see the throughput scenario's "as run" figure).

Then idle cost: one qcluster (TRAMA_WORKERS=2) + one trama_timers with those N
rows in the database and nothing due, for each broker: CPU seconds over the
window, as % of one core.

    .venv/bin/python bench/waiting.py --count 100000 --idle-seconds 30
"""

from __future__ import annotations

import argparse
import sys
import time
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
    group_cpu_seconds,
    loadavg,
    setup_django,
    table_bytes,
)
from bench.throughput import chain, ok_handler

SAGA_COPIES = 10_000


def vacuum() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE executions_execution")
        cursor.execute("VACUUM ANALYZE executions_step")


def run(count: int, idle_seconds: float) -> dict:
    def handler(method, path, headers, body):
        if path.startswith("/pay"):
            return 202, {"accepted": True, "payment": "p-1"}
        return ok_handler(method, path, headers, body)

    service = FastService(handler)
    db = fresh_database("trama_bench_waiting")
    env = {**BENCH_ENV, "TRAMA_BROKER_URL": "", "TRAMA_WORKERS": "2"}
    setup_django(db, **env)
    from definitions.services import store_definition
    from executions.models import Execution
    from executions.services import advance_execution, start_execution

    t0 = time.perf_counter()
    definition = store_definition({
        "name": "wait", "kind": "graph", "start": "pay",
        "nodes": {"pay": {"type": "async_task", "request": {"method": "POST", "url": f"{service.url}/pay",
                                                             "body": {"order": "{{payload.order}}"}},
                          "timeout_s": 86400, "next": "ship"},
                  "ship": {"type": "task", "request": {"method": "POST", "url": f"{service.url}/ship"}}},
    })  # fmt: skip
    template = start_execution(definition, {"order": "o-1"})[0]
    advance_execution(template.pk)
    row = Execution.objects.get(pk=template.pk)
    assert row.status == "WAITING" and row.state["wait"]["acked"], (row.status, row.state.get("wait"))
    clone_execution(template.pk, count - 1)
    vacuum()
    n = Execution.objects.count()
    waiting_bytes = table_bytes("executions_execution", "executions_step")
    result = {
        "executions_waiting": n,
        "create_s": round(time.perf_counter() - t0, 1),
        "db_bytes_per_waiting_execution": round(waiting_bytes / n),
        "execution_table_bytes_per_row": round(table_bytes("executions_execution") / n),
    }

    saga = store_definition(chain("saga5", service.url, 5))
    done = start_execution(saga, {"order": "o-1"})[0]
    advance_execution(done.pk)
    assert Execution.objects.get(pk=done.pk).status == "SUCCEEDED"
    before = table_bytes("executions_execution", "executions_step")
    clone_execution(done.pk, SAGA_COPIES)
    vacuum()
    result["db_bytes_per_finished_saga5"] = round(
        (table_bytes("executions_execution", "executions_step") - before) / SAGA_COPIES
    )
    Execution.objects.filter(definition=saga).delete()
    vacuum()

    for broker in ("orm", "redis"):
        procs = Processes({**env, **broker_env(broker, 11), "DATABASE_URL": db})
        cluster = procs.start("qcluster")
        timers = procs.start("trama_timers")
        try:
            time.sleep(8)  # boot: imports, worker fork, the first poll passes
            load0, cpu0, w0 = loadavg(), procs.cpu_seconds(), time.perf_counter()
            q0, t0 = group_cpu_seconds([cluster.pid]), group_cpu_seconds([timers.pid])
            time.sleep(idle_seconds)
            cpu = procs.cpu_seconds() - cpu0
            q_cpu, t_cpu = group_cpu_seconds([cluster.pid]) - q0, group_cpu_seconds([timers.pid]) - t0
            wall = time.perf_counter() - w0
        finally:
            procs.stop()
        result[f"idle_{broker}"] = {
            "seconds": round(wall, 1),
            "cpu_s": round(cpu, 2),
            "percent_of_one_core": round(cpu * 100 / wall, 2),
            "qcluster_percent": round(q_cpu * 100 / wall, 2),
            "timers_percent": round(t_cpu * 100 / wall, 2),
            "load": f"{load0:.2f}->{loadavg():.2f}",
        }
    service.stop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    args = parser.parse_args()
    emit({"scenario": "waiting", **run(args.count, args.idle_seconds)})


if __name__ == "__main__":
    main()
