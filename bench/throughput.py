"""Scenario 1 — throughput: a burst of 3-step chains, then a burst of 5-step sagas.

One configuration per run (a broker and a worker count): a fresh database, the
web server (gunicorn, 2 processes x 8 threads), ONE `manage.py qcluster` with
TRAMA_WORKERS=N worker processes (the documented way to scale a machine: one
cluster per machine, N workers; several clusters would each add a sentinel,
a monitor and a pusher polling the same queue) and one `manage.py trama_timers`.

Each phase starts all its executions at once through the HTTP API (8 client
threads, each with a keep-alive requests session and a Bearer token) while the
workers run, and waits until every one is final. Reported per phase:
executions/s and steps/s from the first start request to the last execution
final (start requests included), the API's own start rate under that load,
and the CPU seconds of Trama's processes (web + qcluster + timers, children
included; not the service, PostgreSQL or this client) per execution.

    .venv/bin/python bench/throughput.py --broker orm --workers 2 --chains 3000 --sagas 2000
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
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
    group_cpu_seconds,
    loadavg,
    setup_django,
    table_bytes,
    wait_http,
    wait_until,
)

CLIENT_THREADS = 8


def ok_handler(method, path, headers, body):
    return 200, {"ok": True, "id": "r-1"}


def chain(name: str, url: str, steps: int) -> dict:
    """A saga of ``steps`` POSTs; each body uses a template, each step has a compensation (like a real saga)."""
    return {
        "name": name,
        "kind": "saga",
        "steps": [
            {
                "id": f"s{i}",
                "request": {"method": "POST", "url": f"{url}/step/{i}", "body": {"order": "{{payload.order}}"}},
                "compensation": {"method": "POST", "url": f"{url}/undo/{i}"},
            }
            for i in range(1, steps + 1)
        ],
    }


def orm_task_id() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        # The id sequence, not max(id): processed tasks are deleted from the table.
        cursor.execute("SELECT last_value FROM django_q_ormq_id_seq")
        return int(cursor.fetchone()[0])


def role_cpu(procs: Processes) -> dict[str, float]:
    """CPU seconds per process group, in the order run() starts them: web, qcluster, timers."""
    return {
        role: group_cpu_seconds([p.pid]) for role, p in zip(("web", "qcluster", "timers"), procs.procs, strict=True)
    }


def burst(
    api: str, token: str, definition: str, count: int, procs: Processes, broker: str, steps: int, timeout: float = 0
) -> dict:
    """Start ``count`` executions at once through the API, wait until every one is final (at most
    ``timeout`` s; by default one second per execution, two minutes at least), measure the window."""
    import requests
    from django.db.models import Max, Min

    from executions.models import FINAL_STATUSES, Execution

    before = set(Execution.objects.filter(definition__name=definition).values_list("pk", flat=True))
    ids: list[str] = []
    errors: list[int] = []
    lock = threading.Lock()
    task_id0 = orm_task_id() if broker == "orm" else 0
    load0 = loadavg()
    cpu0 = procs.cpu_seconds()
    roles0 = role_cpu(procs)
    t0 = time.perf_counter()

    def client(indexes):
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        for i in indexes:
            r = session.post(api, json={"definition": definition, "input": {"order": f"o-{i}"}}, timeout=60)
            with lock:
                (ids.append(r.json()["id"]) if r.status_code == 202 else errors.append(r.status_code))

    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        list(pool.map(client, [range(k, count, CLIENT_THREADS) for k in range(CLIENT_THREADS)]))
    t_started = time.perf_counter()

    final = Execution.objects.filter(definition__name=definition, status__in=FINAL_STATUSES).exclude(pk__in=before)
    done = wait_until(lambda: final.count() >= len(ids), timeout=timeout or max(120, count), interval=0.1)
    t1 = time.perf_counter()
    cpu1 = procs.cpu_seconds()
    roles1 = role_cpu(procs)
    batch = Execution.objects.filter(pk__in=ids)
    window = batch.aggregate(first=Min("started_at"), last=Max("finished_at"))
    drain_s = (window["last"] - window["first"]).total_seconds() if window["first"] and window["last"] else None
    succeeded = batch.filter(status="SUCCEEDED").count()
    elapsed = t1 - t0
    result = {
        "executions": count,
        "steps_per_execution": steps,
        "start_errors": len(errors),
        "succeeded": succeeded,
        "all_final": done,
        "elapsed_s": round(elapsed, 2),
        "executions_per_s": round(succeeded / elapsed, 1),
        "steps_per_s": round(succeeded * steps / elapsed, 1),
        "api_starts_per_s": round(len(ids) / (t_started - t0), 1),
        "run_window_s": round(drain_s, 2) if drain_s else None,
        "cpu_ms_per_execution": round((cpu1 - cpu0) * 1000 / max(1, succeeded), 2),
        "cpu_ms_per_execution_by_process": {
            role: round((roles1[role] - roles0[role]) * 1000 / max(1, succeeded), 2) for role in roles0
        },
        "load": f"{load0:.2f}->{loadavg():.2f}",
    }
    if broker == "orm":
        result["queue_tasks_per_execution"] = round((orm_task_id() - task_id0) / max(1, count), 2)
    return result


def run(broker: str, workers: int, chains: int, sagas: int) -> dict:
    service = FastService(ok_handler)
    port = free_port()
    db = fresh_database(f"trama_bench_tp_{broker}_{workers}")
    env = {**BENCH_ENV, **broker_env(broker, 8), "TRAMA_WORKERS": str(workers),
           "TRAMA_PUBLIC_URL": f"http://127.0.0.1:{port}"}  # fmt: skip
    setup_django(db, **env)
    from definitions.services import store_definition
    from trama_project.models import ApiToken

    store_definition(chain("chain3", service.url, 3))
    store_definition(chain("saga5", service.url, 5))
    _, token = ApiToken.mint("bench")
    procs = Processes({**env, "DATABASE_URL": db})
    procs.start_web(port)
    procs.start("qcluster")
    procs.start("trama_timers")
    api = f"http://127.0.0.1:{port}/api/v1/executions/"
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        # Warm-up: workers forked and connected, pools open, code paths imported.
        warm = burst(api, token, "chain3", 4 * workers, procs, broker, 3)
        if not warm["all_final"]:
            raise RuntimeError("warm-up executions did not finish: are the workers running?")
        time.sleep(1.0)
        result = {"broker": broker, "workers": workers}
        result["chain3"] = burst(api, token, "chain3", chains, procs, broker, 3)
        time.sleep(1.0)
        result["saga5"] = burst(api, token, "saga5", sagas, procs, broker, 5)
        from executions.models import Execution

        result["db_bytes_per_execution_as_run"] = round(
            table_bytes("executions_execution", "executions_step") / Execution.objects.count()
        )
        return result
    finally:
        procs.stop()
        service.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--broker", choices=["orm", "redis"], default="orm")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chains", type=int, default=3000)
    parser.add_argument("--sagas", type=int, default=2000)
    args = parser.parse_args()
    result = run(args.broker, args.workers, args.chains, args.sagas)
    emit({"scenario": "throughput", **result})


if __name__ == "__main__":
    main()
