"""Load: N executions parked in WAITING cost no worker CPU, and resume correctly in a callback burst.

Issue #7, "Load". A fresh database (trama_burst_<broker>); gunicorn (the callback
receiver), 2 qcluster processes (TRAMA_WORKERS=2 each) and one trama_timers; ORM or
Redis broker (--broker). Definition: `pix` (async_task, timeout 1 h; the service answers
202 and records the callback URL) -> `ship` (task).

1. Idle baseline (optional, --baseline-seconds): CPU of the qclusters + timers with an
   empty database, so the cost of the broker's own polling is visible apart.
2. Park: N executions started with executions.services.start_execution in batches (at
   most --window ahead of the service's /pix count), driven to WAITING by the real
   workers. Reported: time and rate.
3. Quiet: once the broker queue has drained, --idle-seconds with nothing due. CPU of
   the qclusters + timers (from /proc), as % of one core; and whether anything touched
   the parked rows (sum of fences, newest updated_at / nudged_at, step count: all must
   be unchanged).
4. Burst: every callback POSTed at once by --senders threads. Reported: answers by
   status (expect 202 only), time until every execution is SUCCEEDED, /ship calls per
   execution (expect exactly 1), p50/p99 callback->ship latency (from just before the
   callback POST to the /ship request reaching the service), stuck (not SUCCEEDED by
   --settle-timeout) and lost (no /ship call).

Prints a markdown table and a BENCH_RESULT line. Nothing here asserts timings.

    .venv/bin/python bench/waiting_burst.py --count 10000 --broker orm
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from collections import Counter
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
    git_revision,
    group_cpu_seconds,
    loadavg,
    machine_line,
    percentiles,
    setup_django,
    wait_http,
)

REDIS_DB = 14  # a Redis database of this bench's own (flushed at start)


class Service:
    """The user's service: /pix answers 202 and keeps the callback URL; /ship is counted and stamped."""

    def __init__(self):
        self.lock = threading.Lock()
        self.urls: dict[str, str] = {}
        self.pix_calls: Counter = Counter()
        self.ship_calls: Counter = Counter()
        self.ship_first: dict[str, float] = {}
        self.other = 0
        self.fast = FastService(self.handle)

    def handle(self, method, path, headers, body):
        now = time.perf_counter()
        execution = (headers.get("Idempotency-Key") or "").split(":")[0]
        with self.lock:
            if path.startswith("/pix"):
                self.pix_calls[execution] += 1
                self.urls.setdefault(execution, headers.get("X-Trama-Callback-Url", ""))
                return 202, {"accepted": True}
            if path.startswith("/ship"):
                self.ship_calls[execution] += 1
                self.ship_first.setdefault(execution, now)
                return 200, {"shipped": execution}
            self.other += 1
        return 404, {"unknown": path}

    def requests_seen(self) -> int:
        with self.lock:
            return sum(self.pix_calls.values()) + sum(self.ship_calls.values()) + self.other


def definition_spec(url: str) -> dict:
    return {
        "name": "burst-pix-ship", "kind": "graph", "start": "pix",
        "nodes": {
            "pix": {"type": "async_task", "request": {"method": "POST", "url": f"{url}/pix",
                                                       "body": {"order": "{{payload.order}}"}},
                    "timeout_s": 3600, "next": "ship"},
            "ship": {"type": "task", "request": {"method": "POST", "url": f"{url}/ship",
                                                 "body": {"order": "{{payload.order}}"}}},
        },
    }  # fmt: skip


def rows_fingerprint() -> dict:
    """What any poller, timer or worker would change on the parked rows."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), coalesce(sum(fence), 0), max(updated_at), max(nudged_at), "
            "count(*) FILTER (WHERE lease_until IS NOT NULL), "
            "(SELECT count(*) FROM executions_step), (SELECT coalesce(max(id), 0) FROM executions_step) "
            "FROM executions_execution"
        )
        n, fences, updated, nudged, leased, steps, step_max = cursor.fetchone()
    return {"executions": n, "sum_fence": int(fences), "max_updated_at": updated, "max_nudged_at": nudged,
            "leased": leased, "steps": steps, "max_step_id": step_max}  # fmt: skip


def queue_length() -> int:
    """Wake-ups in the broker: waiting or taken by a worker and not yet acknowledged."""
    from django.conf import settings
    from django_q.brokers import get_broker
    from django_q.models import OrmQ

    if settings.TRAMA_BROKER_URL:
        return get_broker().queue_size()
    return OrmQ.objects.count()


def measure_idle(procs: Processes, clusters: list, timers, seconds: float) -> dict:
    q_pids = [c.pid for c in clusters]
    load0, w0 = loadavg(), time.perf_counter()
    q0, t0 = group_cpu_seconds(q_pids), group_cpu_seconds([timers.pid])
    time.sleep(seconds)
    q_cpu, t_cpu = group_cpu_seconds(q_pids) - q0, group_cpu_seconds([timers.pid]) - t0
    wall = time.perf_counter() - w0
    return {
        "seconds": round(wall, 1),
        "cpu_s": round(q_cpu + t_cpu, 2),
        "percent_of_one_core": round((q_cpu + t_cpu) * 100 / wall, 2),
        "qclusters_percent": round(q_cpu * 100 / wall, 2),
        "timers_percent": round(t_cpu * 100 / wall, 2),
        "load": f"{load0:.2f}->{loadavg():.2f}",
    }


def run(args) -> dict:
    import requests

    service = Service()
    port = free_port()
    db = fresh_database(f"trama_burst_{args.broker}")
    env = {**BENCH_ENV, **broker_env(args.broker, REDIS_DB), "TRAMA_WORKERS": str(args.workers),
           "TRAMA_PUBLIC_URL": f"http://127.0.0.1:{port}", "TRAMA_LOG_LEVEL": "WARNING"}  # fmt: skip
    setup_django(db, **env)
    from django.db import transaction

    from definitions.services import store_definition
    from executions.models import Execution, ExecutionStatus
    from executions.services import start_execution

    definition = store_definition(definition_spec(service.fast.url))
    procs = Processes({**env, "DATABASE_URL": db})
    web = procs.start_web(port)
    clusters = [procs.start("qcluster") for _ in range(args.qclusters)]
    timers = procs.start("trama_timers")
    wait_http(f"http://127.0.0.1:{port}/healthz")
    time.sleep(8)  # boot: imports, qcluster forks, first polls
    result: dict = {"broker": args.broker, "count": args.count, "qclusters": args.qclusters,
                    "workers_per_qcluster": args.workers, "senders": args.senders}  # fmt: skip
    all_pids = [web.pid, timers.pid, *(c.pid for c in clusters)]
    try:
        if args.baseline_seconds > 0:
            result["idle_empty"] = measure_idle(procs, clusters, timers, args.baseline_seconds)
            log(f"idle, empty database: {result['idle_empty']}")

        # --- park -----------------------------------------------------------------------
        t0 = time.perf_counter()
        started = 0
        while started < args.count:
            while started - len(service.urls) > args.window:
                time.sleep(0.05)
            batch = min(args.batch, args.count - started)
            with transaction.atomic():  # one commit per batch; each wake-up is enqueued on commit
                for i in range(started, started + batch):
                    start_execution(definition, {"order": f"o-{i}"})
            started += batch
            if started % (args.batch * 10) == 0:
                log(f"started {started}, parked {len(service.urls)}, {time.perf_counter() - t0:.0f}s")

        def parked() -> int:
            return Execution.objects.filter(
                status=ExecutionStatus.WAITING, lease_until__isnull=True, state__wait__acked=True
            ).count()

        deadline = time.monotonic() + args.settle_timeout
        while parked() < args.count and time.monotonic() < deadline:
            time.sleep(0.5)
        park_s = time.perf_counter() - t0
        n_parked = parked()
        result["park"] = {"parked": n_parked, "seconds": round(park_s, 1), "per_second": round(n_parked / park_s, 1),
                          "pix_calls": sum(service.pix_calls.values()),
                          "pix_sent_twice": sum(1 for v in service.pix_calls.values() if v > 1)}  # fmt: skip
        log(f"parked: {result['park']}")
        # Leftover wake-ups (the timer loop's nudges of rows still PENDING when it passed) drain:
        # their claims find nothing due. The quiet window starts with an empty queue.
        result["park"]["queue_left"] = queued = queue_length()
        d0 = time.perf_counter()
        while queued and time.perf_counter() - d0 < args.settle_timeout:
            time.sleep(0.5)
            queued = queue_length()
        result["park"]["queue_drain_s"] = round(time.perf_counter() - d0, 1)
        log(f"queue drained: {result['park']}")
        time.sleep(args.settle)

        # --- quiet ----------------------------------------------------------------------
        before, seen0 = rows_fingerprint(), service.requests_seen()
        result["idle_parked"] = measure_idle(procs, clusters, timers, args.idle_seconds)
        after, seen1 = rows_fingerprint(), service.requests_seen()
        changed = sorted(k for k in before if before[k] != after[k])
        result["idle_parked"]["rows_changed"] = changed or "none"
        result["idle_parked"]["requests_sent"] = seen1 - seen0
        log(f"idle, {n_parked} parked: {result['idle_parked']}")

        # --- burst ----------------------------------------------------------------------
        targets = list(service.urls.items())
        random.Random(7).shuffle(targets)
        sent: dict[str, float] = {}
        answers: Counter = Counter()
        sessions = threading.local()
        cpu0 = group_cpu_seconds(all_pids)

        def send(target):
            execution, url = target
            if not hasattr(sessions, "s"):
                sessions.s = requests.Session()
            sent[execution] = time.perf_counter()
            try:
                code = sessions.s.post(url, json={"status": "succeeded", "output": {"paid": True}}, timeout=120)
                return code.status_code
            except requests.RequestException as exc:
                return type(exc).__name__

        b0 = time.perf_counter()
        with ThreadPoolExecutor(args.senders) as pool:
            for status in pool.map(send, targets):
                answers[status] += 1
        answered_s = time.perf_counter() - b0
        log(f"all callbacks answered in {answered_s:.1f}s: {dict(answers)}")

        def succeeded() -> int:
            return Execution.objects.filter(status=ExecutionStatus.SUCCEEDED).count()

        deadline = time.monotonic() + args.settle_timeout
        while succeeded() < n_parked and time.monotonic() < deadline:
            time.sleep(0.25)
        all_done_s = time.perf_counter() - b0
        burst_cpu = group_cpu_seconds(all_pids) - cpu0
        time.sleep(2)  # a late duplicate /ship would show up here
        statuses = Counter(Execution.objects.values_list("status", flat=True))
        ships = Counter(service.ship_calls[e] for e, _ in targets)
        latencies = [(service.ship_first[e] - sent[e]) * 1000 for e, _ in targets if e in service.ship_first]
        pct = percentiles(latencies, (50, 99)) if latencies else {50: None, 99: None}
        result["burst"] = {
            "callbacks": len(targets),
            "answers": {str(k): v for k, v in sorted(answers.items(), key=str)},
            "answered_s": round(answered_s, 1),
            "callbacks_per_second": round(len(targets) / answered_s, 1),
            "all_succeeded_s": round(all_done_s, 1),
            "statuses": dict(statuses),
            "ship_calls_per_execution": {str(k): v for k, v in sorted(ships.items())},
            "latency_ms_p50": round(pct[50], 1) if pct[50] is not None else None,
            "latency_ms_p99": round(pct[99], 1) if pct[99] is not None else None,
            "stuck": n_parked - statuses.get("SUCCEEDED", 0),
            "lost": sum(1 for e, _ in targets if service.ship_calls[e] == 0),
            "cpu_s_trama": round(burst_cpu, 1),
            "cpu_ms_per_resume": round(burst_cpu * 1000 / max(1, len(targets)), 2),
        }
        log(f"burst: {result['burst']}")
    finally:
        procs.stop()
        service.fast.stop()
    return result


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def table(r: dict) -> str:
    park, quiet, burst = r["park"], r["idle_parked"], r["burst"]

    def cpu(m: dict) -> str:
        return (f"{m['percent_of_one_core']} % of a core over {m['seconds']} s "
                f"(qclusters {m['qclusters_percent']} %, timers {m['timers_percent']} %)")  # fmt: skip

    rows = [
        ("broker", r["broker"]),
        ("executions parked in WAITING (by the real workers)", f"{park['parked']} of {r['count']}"),
        ("time to park (rate)", f"{park['seconds']} s ({park['per_second']}/s)"),
    ]
    if "idle_empty" in r:
        rows.append(("worker+timers CPU, empty database", cpu(r["idle_empty"])))
    ships = ", ".join(f"{k} call: {v}" for k, v in burst["ship_calls_per_execution"].items())
    rows += [
        (f"worker+timers CPU, {park['parked']} parked, nothing due", cpu(quiet)),
        ("rows touched / requests sent while parked", f"{quiet['rows_changed']} / {quiet['requests_sent']}"),
        (f"callback answers ({r['senders']} senders)", ", ".join(f"{k}: {v}" for k, v in burst["answers"].items())),
        ("all callbacks answered in", f"{burst['answered_s']} s ({burst['callbacks_per_second']}/s)"),
        ("every execution SUCCEEDED after", f"{burst['all_succeeded_s']} s from the first callback"),
        ("/ship calls per execution", ships),
        ("callback -> ship latency p50 / p99", f"{burst['latency_ms_p50']} ms / {burst['latency_ms_p99']} ms"),
        ("stuck / lost", f"{burst['stuck']} / {burst['lost']}"),
        ("Trama CPU during the burst (web+workers+timers)",
         f"{burst['cpu_s_trama']} s ({burst['cpu_ms_per_resume']} ms per resume)"),
    ]  # fmt: skip
    width = max(len(k) for k, _ in rows)
    lines = [f"| {'measure'.ljust(width)} | value |", f"|{'-' * (width + 2)}|-------|"]
    lines += [f"| {k.ljust(width)} | {v} |" for k, v in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--broker", choices=["orm", "redis"], default="orm")
    parser.add_argument("--qclusters", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="TRAMA_WORKERS per qcluster")
    parser.add_argument("--senders", type=int, default=32)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--baseline-seconds", type=float, default=30.0, help="idle with no execution; 0 skips it")
    parser.add_argument("--batch", type=int, default=200, help="starts per transaction")
    parser.add_argument("--window", type=int, default=200, help="started but not yet at the service, at most")
    parser.add_argument("--settle", type=float, default=3.0, help="pause after the queue drained, then quiet")
    parser.add_argument("--settle-timeout", type=float, default=600.0)
    args = parser.parse_args()
    load0, revision = loadavg(), git_revision()  # the code the processes start with
    result = run(args)
    print(f"\nwaiting_burst, {machine_line()}, rev {revision}, load {load0:.2f}->{loadavg():.2f}\n")
    print(table(result))
    emit({"scenario": "waiting_burst", **result})


if __name__ == "__main__":
    main()
