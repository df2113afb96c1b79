"""Trama under faults, long version: every chaos scenario on its own fresh database, one table.

For each scenario: gunicorn (the API and the callback receiver), three qclusters
and a timer loop (tests/support/chaos.py), ``--executions`` executions of the
mixed workload started through the API at ``--rate`` per second, the fault
repeated while they start, then the check. Prints a Markdown table (the one in
docs/reliability.md).

    .venv/bin/python bench/chaos.py --executions 5000
    .venv/bin/python bench/chaos.py --executions 300 --scenarios sigkill,zombie
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Processes, free_port, fresh_database, setup_django, wait_http

DATABASE = "trama_bench_chaos"
REDIS_URL = "redis://127.0.0.1:6379/12"  # a database of its own: the broker-loss scenario flushes it
LEASE_S = 2


def scenarios(chaos) -> dict[str, dict]:
    """name -> run_scenario arguments (and ``broker``)."""
    return {
        "sigkill": {"fault": chaos.Fault("sigkill", chaos.sigkill_one(1.0), every_s=15), "delay_s": 0.2},
        "zombie": {"fault": chaos.Fault("zombie", chaos.zombie, every_s=15), "delay_s": 0.2},
        "storm": {"fault": chaos.Fault("storm", chaos.kill_storm, every_s=2)},
        "broker-redis": {
            "fault": chaos.Fault("broker", chaos.broker_flush, every_s=20, ready=chaos.every_state_present),
            "broker": "redis",
        },
        "broker-orm": {"fault": chaos.Fault("broker", chaos.broker_flush, every_s=20, ready=chaos.every_state_present)},
        "pg-cut": {"fault": chaos.Fault("pg cut", chaos.cut_connections(10.0), every_s=30)},
        "no-failures": {"fail_rate": 0.0},
        "failures-10pct": {"fail_rate": 0.1},
    }


TITLES = {
    "sigkill": "1. SIGKILL a worker with calls in flight, restart (every 15 s)",
    "zombie": "2. zombie: SIGSTOP past the lease, SIGCONT after takeover (every 15 s)",
    "storm": "3. kill storm: a random worker SIGKILLed and restarted every 2 s",
    "broker-redis": "4a. broker lost: Redis FLUSHDB (every 20 s)",
    "broker-orm": "4b. broker lost: TRUNCATE django_q_ormq (every 20 s)",
    "pg-cut": "5. PostgreSQL sessions cut for 10 s (every 30 s)",
    "no-failures": "6a. no faults, no business failures",
    "failures-10pct": "6b. no faults, 10% business failures",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executions", type=int, default=5000, help="executions per scenario")
    parser.add_argument("--rate", type=float, default=20.0, help="starts per second")
    parser.add_argument("--delay", type=float, default=0.05, help="seconds each service call takes")
    parser.add_argument("--settle", type=float, default=600.0, help="most seconds to wait for the last execution")
    parser.add_argument("--scenarios", default="all", help="comma-separated names, or all")
    parser.add_argument(
        "--concurrency", type=int, default=2, help="TRAMA_WORKER_CONCURRENCY: executions in flight per worker process"
    )
    args = parser.parse_args()

    os.environ.setdefault("TRAMA_SECRET_KEY", secrets.token_urlsafe(40))
    os.environ |= {"TRAMA_EGRESS_ALLOW": "127.0.0.1", "TRAMA_LOG_LEVEL": "WARNING"}
    db_url = fresh_database(DATABASE)
    port = free_port()
    setup_django(db_url, TRAMA_PUBLIC_URL=f"http://127.0.0.1:{port}")

    from django.db import connection

    from definitions.services import store_definition
    from tests.support import TestService, chaos
    from trama_project.models import ApiToken

    service = TestService().start()
    store_definition(chaos.chain_definition(service.url))
    store_definition(chaos.branch_definition(service.url))
    _, token = ApiToken.mint("chaos-bench")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        observer = cursor.fetchone()[0]

    chosen = scenarios(chaos)
    if args.scenarios != "all":
        chosen = {name: chosen[name] for name in args.scenarios.split(",")}
    print(
        f"{args.executions} executions per scenario, {args.rate:g} starts/s, calls take {args.delay:g} s, "
        f"3 qclusters x 2 workers x {args.concurrency} in flight + 1 timer loop, TRAMA_LEASE_SECONDS={LEASE_S}",
        flush=True,
    )
    print(chaos.TABLE_HEADER, flush=True)
    results = []
    for name, options in chosen.items():
        result = run_one(chaos, name, dict(options), args, port, token, service, observer)
        results.append(result)
        print(result.row(), flush=True)
    service.stop()
    for result in results:
        print(f"\n{result.name}: {result.seconds:.0f} s, {result.start_retries} start retries", file=sys.stderr)
        for fault in result.faults:
            print(f"  fault: {fault.what} (in flight {fault.in_flight})", file=sys.stderr)
        for problem in result.problems[:20]:
            print(f"  {problem}", file=sys.stderr)


def run_one(chaos, name: str, options: dict, args, port: int, token: str, service, observer: int):
    from tests.support import WorkerPool

    broker = options.pop("broker", "orm")
    broker_url = REDIS_URL if broker == "redis" else ""
    if broker == "redis":
        import redis

        redis.Redis.from_url(REDIS_URL).flushdb()
    env = {
        "TRAMA_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "TRAMA_BROKER_URL": broker_url,
        "TRAMA_LEASE_SECONDS": LEASE_S,
    }
    web = Processes({k: str(v) for k, v in env.items()})
    web.start_web(port)
    pool = WorkerPool(env=env)
    harness = chaos.Harness(
        f"http://127.0.0.1:{port}", token, service, pool, redis_url=broker_url or None, concurrency=args.concurrency
    )
    harness.observer_pid = observer
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        harness.start()
        time.sleep(3)  # let the clusters boot before the first start
        options.setdefault("delay_s", args.delay)
        return chaos.run_scenario(
            harness, TITLES[name], args.executions, rate=args.rate, settle_s=args.settle, max_faults=None, **options
        )
    finally:
        pool.stop_all()
        web.stop()


if __name__ == "__main__":
    main()
