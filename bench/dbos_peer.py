"""Scenario 6 — peer: the throughput scenario's 5-step saga, or scenario 7's 3-call chain, written with DBOS Transact.

Same PostgreSQL server (its own database), same service, same machine. The DBOS application runs
in child processes: a workflow whose steps are POSTs with a keep-alive requests session (one per
thread), each step's result checkpointed by DBOS in PostgreSQL. The executions are enqueued at
once on a DBOS queue (durable, like Trama's start) and run by the children's worker threads; we
measure from the first enqueue to the last result, and the children's CPU (user+sys) over that
window.

- ``--workflow saga5`` (scenario 6): bench.throughput's 5-step saga against FastService (in this
  process), one DBOS process with ``--concurrency`` worker threads.
- ``--workflow chain3`` (scenario 7, bench/inflight.py, its options): t1 -> t2 -> t3, each body
  carrying the id the previous call returned, against the same DelayService answering
  ``--delay-ms`` late; ``--workers`` DBOS processes (started one after the other: the first
  creates DBOS's tables), each with its own executor id and ``worker_concurrency=--concurrency``,
  so as many executions are in flight as Trama's workers x TRAMA_WORKER_CONCURRENCY. The same
  columns as Trama's rows: PostgreSQL CPU, peak memory of each DBOS process, database bytes (every
  table of the dbos schema) per workflow, and one at a time (enqueue -> result, polling every 2 ms).

DBOS is not a Trama dependency: `pip install -r bench/requirements-bench.txt`.

    .venv/bin/python bench/dbos_peer.py --count 2000 --concurrency 16
    .venv/bin/python bench/dbos_peer.py --workflow chain3 --delay-ms 50 --count 2000 --workers 2 --concurrency 100
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

from bench.common import PG, DelayService, FastService, Sampler, emit, group_cpu_seconds, loadavg
from bench.inflight import CHAIN, CONCURRENCY, WARM_UP, add_options, chain_body, chain_handler, one_at_a_time, setting
from bench.throughput import ok_handler

STEPS = 5
SAGA5_THREADS = 16
QUEUE_POLL_S = 0.05  # how often a DBOS process looks for queued work (Trama's ORM broker polls as often)


def child(cfg: dict) -> None:
    """One DBOS process: launch, warm up, print READY, then answer one JSON line per command on stdin."""
    import requests
    from dbos import DBOS, DBOSConfig

    local = threading.local()

    def session() -> requests.Session:
        if not hasattr(local, "s"):
            local.s = requests.Session()
        return local.s

    config: DBOSConfig = {"name": "trama-bench", "system_database_url": cfg["database_url"], "log_level": "WARNING",
                          "executor_id": cfg["executor_id"]}  # fmt: skip
    DBOS(config=config)

    @DBOS.step()
    def call(path: str, body: dict) -> dict:
        r = session().post(f"{cfg['url']}/{path}", json=body, timeout=30)
        r.raise_for_status()
        return r.json()

    @DBOS.workflow()
    def saga(order: str) -> dict:
        out = {}
        for i in range(1, STEPS + 1):
            out = call(f"step/{i}", {"order": order})
        return out

    @DBOS.workflow()
    def chain3(order: str) -> dict:
        prev = None
        for step in CHAIN:
            prev = call(step, chain_body(order, prev))["id"]
        return {"id": prev}

    workflow = {"saga5": saga, "chain3": chain3}[cfg["workflow"]]
    me = cfg["executor_id"]
    DBOS.launch()
    queue = DBOS.register_queue("bench", worker_concurrency=cfg["concurrency"], polling_interval_sec=QUEUE_POLL_S)

    def one(i: int) -> float:
        t0 = time.perf_counter()
        queue.enqueue(workflow, f"{me}-one-{i}").get_result(polling_interval_sec=0.002)
        return (time.perf_counter() - t0) * 1000

    for h in [queue.enqueue(workflow, f"{me}-w-{i}") for i in range(WARM_UP)]:
        h.get_result(polling_interval_sec=QUEUE_POLL_S)
    print("READY", flush=True)
    for line in sys.stdin:
        command, *args = line.split()
        if command == "burst":
            t0 = time.perf_counter()
            handles = [queue.enqueue(workflow, f"{me}-o-{i}") for i in range(int(args[0]))]
            enqueued = time.perf_counter()
            ok = sum(1 for h in handles if h.get_result(polling_interval_sec=QUEUE_POLL_S) is not None)
            out = {"ok": ok, "elapsed_s": time.perf_counter() - t0, "enqueue_s": enqueued - t0}
        else:  # "one <count> <budget_s>"
            out = one_at_a_time(one, int(args[0]), float(args[1]))
        print(json.dumps(out), flush=True)
    DBOS.destroy()


class Children:
    """The DBOS processes, each in its own session, started one after the other."""

    def __init__(self, cfg: dict, processes: int):
        self.procs: list[subprocess.Popen] = []
        try:
            for k in range(processes):
                proc = subprocess.Popen(
                    [sys.executable, __file__, "--child", json.dumps({**cfg, "executor_id": f"bench-{k}"})],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True,
                )  # fmt: skip
                self.procs.append(proc)
                line = proc.stdout.readline().strip()
                if line != "READY":
                    raise RuntimeError(f"DBOS child did not start: {line!r}")
        except BaseException:
            self.stop()
            raise

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def ask(self, commands: list[str]) -> list[dict]:
        """Send commands[k] to child k (all at once), then read each one's answer."""
        for proc, command in zip(self.procs, commands, strict=False):
            proc.stdin.write(command + "\n")
            proc.stdin.flush()
        return [json.loads(proc.stdout.readline()) for proc, _ in zip(self.procs, commands, strict=False)]

    def burst(self, count: int) -> tuple[float, int]:
        """``count`` workflows enqueued at once, split across the children: (seconds, succeeded)."""
        n = len(self.procs)
        t0 = time.perf_counter()
        outs = self.ask([f"burst {count // n + (k < count % n)}" for k in range(n)])
        return time.perf_counter() - t0, sum(o["ok"] for o in outs)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.stdin and not proc.stdin.closed:
                proc.stdin.close()  # the child destroys DBOS and exits
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def fresh_dbos_database(name: str) -> str:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return PG.replace("postgres://", "postgresql://", 1) + f"/{name}"


def dbos_bytes_per_workflow(database_url: str) -> int:
    """pg_total_relation_size (heap + TOAST + indexes) of every table in the dbos schema ÷ workflows."""
    import psycopg

    with psycopg.connect(database_url) as conn:
        total = conn.execute(
            "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'dbos' AND c.relkind IN ('r', 'p')"
        ).fetchone()[0]
        workflows = conn.execute("SELECT count(*) FROM dbos.workflow_status").fetchone()[0]
    return round(int(total) / max(1, workflows))


def run(count: int, concurrency: int) -> dict:
    """Scenario 6: the 5-step saga, one DBOS process."""
    database_url = fresh_dbos_database("trama_bench_dbos")
    service = FastService(ok_handler)
    cfg = {"url": service.url, "database_url": database_url, "workflow": "saga5", "concurrency": concurrency}
    try:
        children = Children(cfg, 1)
        try:
            load0, cpu0 = loadavg(), group_cpu_seconds(children.pids)
            elapsed, ok = children.burst(count)
            cpu1 = group_cpu_seconds(children.pids)
        finally:
            children.stop()
    finally:
        service.stop()
    from importlib.metadata import version

    return {
        "dbos_version": version("dbos"),
        "workflows": count,
        "succeeded": ok,
        "worker_threads": concurrency,
        "elapsed_s": round(elapsed, 2),
        "workflows_per_s": round(ok / elapsed, 1),
        "steps_per_s": round(ok * STEPS / elapsed, 1),
        "cpu_ms_per_workflow": round((cpu1 - cpu0) * 1000 / max(1, ok), 2),
        "load": f"{load0:.2f}->{loadavg():.2f}",
    }


def run_chain3(delay_ms: float, count: int, workers: int, concurrency: int, sequential: int, budget_s: float) -> dict:
    """Scenario 7's DBOS row: the 3-call chain, ``workers`` DBOS processes."""
    load_before = loadavg()
    service = DelayService(chain_handler(), delay_ms / 1000)
    name = "trama_bench_dbos_chain3"
    database_url = fresh_dbos_database(name)
    cfg = {"url": service.url, "database_url": database_url, "workflow": "chain3", "concurrency": concurrency}
    try:
        children = Children(cfg, workers)
        try:
            one = children.ask([f"one {sequential} {budget_s}"])[0]
            service.stats()  # resets the in-flight peak
            sampler = Sampler(children.pids, name).start()
            cpu0 = group_cpu_seconds(children.pids)
            elapsed, ok = children.burst(count)
            cpu1 = group_cpu_seconds(children.pids)
            sampler.stop()
        finally:
            children.stop()
        stats = service.stats()
    finally:
        service.stop()
    from importlib.metadata import version

    return {
        "system": "dbos",
        "dbos_version": version("dbos"),
        **setting(delay_ms, workers, concurrency),
        "in_flight_peak": stats["in_flight_peak"],
        "executions": count,
        "succeeded": ok,
        "all_final": ok == count,
        "elapsed_s": round(elapsed, 2),
        "executions_per_s": round(ok / elapsed, 1),
        "cpu_ms_per_execution": round((cpu1 - cpu0) * 1000 / max(1, ok), 2),
        "pg_cpu_ms_per_execution": round(sampler.pg_cpu_s * 1000 / max(1, ok), 2),
        "rss_mb_per_worker": [round(sampler.peak_hwm_kb.get(pid, 0) / 1024) for pid in children.pids],
        "rss_mb_all_processes": round(sampler.peak_rss_kb / 1024),
        "db_bytes_per_execution": dbos_bytes_per_workflow(database_url),
        "one_at_a_time_ms": one,
        "chain_errors": stats["chain_errors"],
        "load": f"{load_before:.2f}->{loadavg():.2f}",
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(json.loads(sys.argv[2]))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--workflow", choices=["saga5", "chain3"], default="saga5")
    add_options(parser, concurrency=None)
    args = parser.parse_args()
    args.concurrency = args.concurrency or (SAGA5_THREADS if args.workflow == "saga5" else CONCURRENCY)
    scenario = "dbos" if args.workflow == "saga5" else "inflight"
    try:
        import dbos  # noqa: F401
    except ImportError as exc:
        emit({"scenario": scenario, "system": "dbos",
              "error": f"DBOS is not installed ({exc}); pip install -r bench/requirements-bench.txt"})  # fmt: skip
        return
    if args.workflow == "saga5":
        emit({"scenario": "dbos", **run(args.count, args.concurrency)})
    else:
        emit({"scenario": "inflight", **run_chain3(args.delay_ms, args.count, args.workers, args.concurrency,
                                                    args.sequential, args.sequential_budget_s)})  # fmt: skip


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
