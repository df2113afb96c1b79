"""Scenario 6 — peer: the 5-step saga of the throughput scenario written with DBOS Transact.

Same PostgreSQL server (its own database, trama_bench_dbos), same FastService
(in this parent process), same machine. The DBOS application runs in a child
process: a workflow of 5 steps, each a POST with a keep-alive requests session
(one per thread), each step's result checkpointed by DBOS in PostgreSQL. M
workflows are enqueued at once on a DBOS queue (durable, like Trama's start)
and run by the child's worker threads; we measure from the first enqueue to
the last result, and the child's CPU (user+sys) over that window.

DBOS is not a Trama dependency: `pip install -r bench/requirements-bench.txt`.

    .venv/bin/python bench/dbos_peer.py --count 2000 --concurrency 16
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import PG, FastService, emit, group_cpu_seconds, loadavg
from bench.throughput import ok_handler

STEPS = 5


def child(url: str, database_url: str, count: int, concurrency: int) -> None:
    import requests
    from dbos import DBOS, DBOSConfig

    local = threading.local()

    def session() -> requests.Session:
        if not hasattr(local, "s"):
            local.s = requests.Session()
        return local.s

    config: DBOSConfig = {"name": "trama-bench", "system_database_url": database_url, "log_level": "WARNING"}
    DBOS(config=config)

    @DBOS.step()
    def call(i: int, order: str) -> dict:
        r = session().post(f"{url}/step/{i}", json={"order": order}, timeout=10)
        r.raise_for_status()
        return r.json()

    @DBOS.workflow()
    def saga(order: str) -> dict:
        out = {}
        for i in range(1, STEPS + 1):
            out = call(i, order)
        return out

    DBOS.launch()
    queue = DBOS.register_queue("bench", worker_concurrency=concurrency, polling_interval_sec=0.05)
    for h in [queue.enqueue(saga, f"w-{i}") for i in range(8)]:  # warm-up
        h.get_result()
    print("READY", flush=True)
    sys.stdin.readline()
    t0 = time.perf_counter()
    handles = [queue.enqueue(saga, f"o-{i}") for i in range(count)]
    enqueued = time.perf_counter()
    ok = sum(1 for h in handles if h.get_result() is not None)
    t1 = time.perf_counter()
    print(json.dumps({"ok": ok, "elapsed_s": t1 - t0, "enqueue_s": enqueued - t0}), flush=True)
    DBOS.destroy()


def run(count: int, concurrency: int) -> dict:
    import psycopg

    name = "trama_bench_dbos"
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    database_url = PG.replace("postgres://", "postgresql://", 1) + f"/{name}"
    service = FastService(ok_handler)
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", service.url, database_url, str(count), str(concurrency)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        line = proc.stdout.readline().strip()
        if line != "READY":
            raise RuntimeError(f"DBOS child did not start: {line!r}")
        load0, cpu0 = loadavg(), group_cpu_seconds([proc.pid])
        proc.stdin.write("go\n")
        proc.stdin.flush()
        out = json.loads(proc.stdout.readline())
        cpu1 = group_cpu_seconds([proc.pid])
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
        service.stop()
    elapsed = out["elapsed_s"]
    from importlib.metadata import version

    return {
        "dbos_version": version("dbos"),
        "workflows": count,
        "succeeded": out["ok"],
        "worker_threads": concurrency,
        "elapsed_s": round(elapsed, 2),
        "workflows_per_s": round(out["ok"] / elapsed, 1),
        "steps_per_s": round(out["ok"] * STEPS / elapsed, 1),
        "enqueue_s": round(out["enqueue_s"], 2),
        "cpu_ms_per_workflow": round((cpu1 - cpu0) * 1000 / max(1, out["ok"]), 2),
        "load": f"{load0:.2f}->{loadavg():.2f}",
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    try:
        import dbos  # noqa: F401
    except ImportError as exc:
        emit(
            {"scenario": "dbos", "error": f"DBOS is not installed ({exc}); pip install -r bench/requirements-bench.txt"}
        )
        return
    emit({"scenario": "dbos", **run(args.count, args.concurrency)})


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
