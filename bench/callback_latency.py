"""Callback resume latency: from a callback POST to the next node's request reaching the service.

For each broker (ORM, Redis): a fresh database, web + 2 workers + timers, N
executions of `async -> next`. The service answers the async request 202 and
queues the callback; a pool of senders POSTs the callbacks; the service
stamps when each execution's `next` request arrives. Prints p50/p95/p99.

    .venv/bin/python bench/callback_latency.py [--count 1000] [--concurrency 4] [--broker orm|redis|both]
"""

import argparse
import queue
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import FastService, Processes, free_port, fresh_database, percentiles, setup_django, wait_http


def run(broker: str, count: int, concurrency: int) -> dict:
    import requests

    pending: queue.Queue = queue.Queue()
    arrived: dict[str, float] = {}

    def handler(method, path, headers, body):
        execution = (headers.get("Idempotency-Key") or "").split(":")[0]
        if path.startswith("/async"):
            pending.put((execution, headers["X-Trama-Callback-Url"]))
            return 202, {"accepted": True}
        arrived[execution] = time.perf_counter()
        return 200, {"ok": True}

    service = FastService(handler)
    port = free_port()
    db = fresh_database(f"trama_bench_callbacks_{broker}")
    env = {
        "DATABASE_URL": db,
        "TRAMA_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "TRAMA_EGRESS_ALLOW": "127.0.0.1",
        "TRAMA_WORKERS": "2",
        "TRAMA_BROKER_URL": "redis://127.0.0.1:6379/7" if broker == "redis" else "",
    }
    if broker == "redis":
        import redis

        redis.Redis.from_url(env["TRAMA_BROKER_URL"]).flushdb()
    setup_django(db, **{k: v for k, v in env.items() if k != "DATABASE_URL"})
    from definitions.services import store_definition
    from executions.services import start_execution

    definition = store_definition({
        "name": "callback-bench", "kind": "graph", "start": "wait",
        "nodes": {
            "wait": {"type": "async_task", "request": {"method": "POST", "url": f"{service.url}/async"},
                     "timeout_s": 600, "next": "next"},
            "next": {"type": "task", "request": {"method": "POST", "url": f"{service.url}/next"}},
        },
    })  # fmt: skip
    procs = Processes(env)
    procs.start_web(port)
    procs.start("qcluster")
    procs.start("trama_timers")
    wait_http(f"http://127.0.0.1:{port}/healthz")

    sent: dict[str, float] = {}
    answered: dict[str, float] = {}
    waiting: dict[str, queue.Queue] = {}

    def route():
        # Hand each async request's callback URL to the thread that started that execution.
        while True:
            execution, url = pending.get()
            if execution is None:
                return
            waiting.setdefault(execution, queue.Queue()).put(url)

    threading.Thread(target=route, daemon=True).start()

    def one_execution(session):
        # Closed loop: start, wait for the async request, call back, wait for the next request.
        execution = str(start_execution(definition, {})[0].pk)
        url = waiting.setdefault(execution, queue.Queue()).get(timeout=60)
        time.sleep(0.005)  # a real service answers 202 first and calls back later than this
        sent[execution] = time.perf_counter()
        session.post(url, json={"status": "succeeded"}, timeout=30)
        answered[execution] = time.perf_counter()
        deadline = time.monotonic() + 30
        while execution not in arrived and time.monotonic() < deadline:
            time.sleep(0.0005)

    def loop(n):
        session = requests.Session()
        for _ in range(n):
            one_execution(session)

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(loop, [count // concurrency] * concurrency))
    pending.put((None, None))
    procs.stop()
    service.stop()
    latencies = [(arrived[e] - sent[e]) * 1000 for e in sent if e in arrived]
    receiver = [(answered[e] - sent[e]) * 1000 for e in answered]
    print("receiver answer ms p50/p95/p99:", percentiles(receiver), file=sys.stderr)
    return {"broker": broker, "n": len(latencies), **percentiles(latencies)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--broker", choices=["orm", "redis", "both"], default="both")
    parser.add_argument("--no-header", action="store_true")
    args = parser.parse_args()
    brokers = ["orm", "redis"] if args.broker == "both" else [args.broker]
    if not args.no_header:
        print(f"callback -> next request latency: {args.count} executions, {args.concurrency} in flight, 2 workers")
        print(f"{'broker':<8}{'n':>6}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}", flush=True)
    for broker in brokers:
        # Each broker runs in its own process: Django settings are read once per process.
        if len(brokers) > 1:
            import subprocess

            subprocess.run([sys.executable, __file__, "--broker", broker, "--count", str(args.count),
                            "--concurrency", str(args.concurrency), "--no-header"], check=True)  # fmt: skip
            continue
        row = run(broker, args.count, args.concurrency)
        print(f"{row['broker']:<8}{row['n']:>6}{row[50]:>10.1f}{row[95]:>10.1f}{row[99]:>10.1f}", flush=True)


if __name__ == "__main__":
    main()
