"""CPU per outbound call: ``dispatch.send`` to a fast local service, N calls one after another.

The service runs in a child process, so the CPU measured (``time.process_time``
of this process, every thread) is Trama's side of the call only: building the
request, the egress check, the pooled keep-alive connection, reading and
decoding the answer. The request is shaped like a task step's: a POST with a
JSON body, an Idempotency-Key and a query string.

    .venv/bin/python bench/dispatch_cost.py --count 5000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import BENCH_ENV, PG, FastService, emit, loadavg, setup_django

WARM_UP = 200


def serve() -> None:
    """The child: answer every request with a small JSON body until stdin closes."""
    service = FastService(lambda method, path, headers, body: (200, {"ok": True, "id": "r-1", "items": [1, 2, 3]}))
    print(service.url, flush=True)
    sys.stdin.read()
    service.stop()


def measure(url: str, count: int) -> dict:
    from executions import dispatch

    request = {
        "method": "POST",
        "url": url + "/reserve",
        "headers": {"Content-Type": "application/json"},
        "query": {"tenant": "acme"},
        "body": {"order": 42, "lines": [{"sku": "A-1", "qty": 2}]},
        "timeout_s": 10.0,
    }
    for n in range(WARM_UP):
        dispatch.send(request, {"Idempotency-Key": f"warm:{n}"})
    cpu, wall = time.process_time(), time.perf_counter()
    for n in range(count):
        outcome = dispatch.send(request, {"Idempotency-Key": f"run:{n}"})
        if outcome.failure is not None:
            raise SystemExit(f"call {n} failed: {outcome.error}")
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {
        "scenario": "dispatch_cost",
        "calls": count,
        "cpu_us_per_call": round(cpu / count * 1e6, 1),
        "wall_us_per_call": round(wall / count * 1e6, 1),
        "loadavg_1m": loadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return
    child = subprocess.Popen([sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        url = child.stdout.readline().decode().strip()
        # Nothing touches the database; settings just need a URL to parse.
        setup_django(os.environ.get("DATABASE_URL", f"{PG}/postgres"), **BENCH_ENV)
        result = measure(url, args.count)
    finally:
        child.stdin.close()
        child.wait(timeout=10)
    print(
        f"{result['calls']} calls: {result['cpu_us_per_call']} us CPU and {result['wall_us_per_call']} us wall "
        f"per call (load average {result['loadavg_1m']:.2f})"
    )
    emit(result)


if __name__ == "__main__":
    main()
