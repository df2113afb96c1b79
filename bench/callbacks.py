"""Scenario 3 — callback resume latency, with Trama's CPU per execution.

Runs bench/callback_latency.py's ``run`` (web + one qcluster with 2 workers +
timers; N executions of `async -> next`, a closed loop of 4 senders) and reads
the CPU seconds Trama's processes spent during its measured loop (boot excluded).

    .venv/bin/python bench/callbacks.py --broker orm --count 1000
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common
from bench.common import emit, loadavg


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--broker", choices=["orm", "redis"], default="orm")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    seen: list = []
    cpu: list[float] = []
    start_web = common.Processes.start_web

    def remember(self, *a, **kw):
        seen.append(self)
        return start_web(self, *a, **kw)

    class MeasuredPool(ThreadPoolExecutor):
        """The pool callback_latency runs its closed loop in: CPU is read when it opens and closes."""

        def __enter__(self):
            cpu.append(seen[-1].cpu_seconds())
            return super().__enter__()

        def __exit__(self, *exc):
            out = super().__exit__(*exc)
            cpu.append(seen[-1].cpu_seconds())
            return out

    common.Processes.start_web = remember
    from bench import callback_latency

    callback_latency.ThreadPoolExecutor = MeasuredPool
    load0 = loadavg()
    row = callback_latency.run(args.broker, args.count, args.concurrency)
    emit({
        "scenario": "callbacks", "broker": args.broker, "executions": row["n"], "concurrency": args.concurrency,
        "latency_ms": {"p50": round(row[50], 1), "p95": round(row[95], 1), "p99": round(row[99], 1)},
        "cpu_ms_per_execution": round((cpu[1] - cpu[0]) * 1000 / max(1, row["n"]), 2),
        "load": f"{load0:.2f}->{loadavg():.2f}",
    })  # fmt: skip


if __name__ == "__main__":
    main()
