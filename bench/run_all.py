"""The benchmark suite: every scenario, then one table and the targets (met / not met).

    make bench                                   # .venv/bin/python bench/run_all.py
    .venv/bin/python bench/run_all.py --quick    # small counts: a few minutes
    .venv/bin/python bench/run_all.py --only throughput,timers --set chains=1000 --json /tmp/bench.json

Needs PostgreSQL at 127.0.0.1:5432 (user postgres; BENCH_PG overrides) and Redis
at 127.0.0.1:6379 (BENCH_REDIS); creates and drops its own trama_bench_* databases.
The DBOS peer needs `pip install -r bench/requirements-bench.txt`.

Each scenario runs in its own process (Django reads settings once per process)
and prints one BENCH_RESULT JSON line; this script collects them. Nothing is
asserted: the machine may be shared, so every result carries the load average.
See docs/benchmarks.md for what each number means.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import PYTHON, REPO, git_revision, loadavg, machine_line

SIZES = {
    "quick": {"chains": 200, "sagas": 100, "workers": [1, 2, 4], "overhead": 60, "callbacks": 200,
              "timers": 1000, "waiting": 100_000, "idle": 15, "dbos": 100, "profile": 200},
    "full": {"chains": 3000, "sagas": 2000, "workers": [1, 2, 4], "overhead": 300, "callbacks": 1000,
             "timers": 5000, "waiting": 100_000, "idle": 30, "dbos": 2000, "profile": 300},
}  # fmt: skip
SCENARIOS = ["throughput", "overhead", "callbacks", "timers", "waiting", "dbos", "profile"]


def scenario(script: str, *args: object) -> list[dict]:
    cmd = [PYTHON, str(REPO / "bench" / script), *map(str, args)]
    print(f"# {' '.join(cmd[1:])}  (load {loadavg():.2f})", file=sys.stderr, flush=True)
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    results = [json.loads(line[13:]) for line in proc.stdout.splitlines() if line.startswith("BENCH_RESULT ")]
    if proc.returncode != 0 or not results:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        results = [{"scenario": script, "error": f"exit {proc.returncode}: " + " | ".join(tail)}]
    print(f"#   done in {time.monotonic() - started:.0f}s", file=sys.stderr, flush=True)
    return results


def collect(size: dict, only: list[str]) -> list[dict]:
    out: list[dict] = []
    if "throughput" in only:
        for broker in ("orm", "redis"):
            for workers in size["workers"]:
                out += scenario("throughput.py", "--broker", broker, "--workers", workers,
                                "--chains", size["chains"], "--sagas", size["sagas"])  # fmt: skip
    if "overhead" in only:
        out += scenario("overhead.py", "--count", size["overhead"])
    if "callbacks" in only:
        for broker in ("orm", "redis"):
            out += scenario("callbacks.py", "--broker", broker, "--count", size["callbacks"])
    if "timers" in only:
        out += scenario("timers.py", "--count", size["timers"])
    if "waiting" in only:
        out += scenario("waiting.py", "--count", size["waiting"], "--idle-seconds", size["idle"])
    if "dbos" in only:
        out += scenario("dbos_peer.py", "--count", size["dbos"])
    if "profile" in only:
        out += scenario("profile_hot_path.py", "--count", size["profile"])
    return out


def fmt(value, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def report(results: list[dict]) -> str:
    lines: list[str] = []
    by = {}
    for r in results:
        by.setdefault(r["scenario"].replace(".py", ""), []).append(r)
    errors = [r for r in results if "error" in r]

    tp = [r for r in by.get("throughput", []) if "error" not in r]
    if tp:
        lines += ["### 1. Throughput (burst started at once through the API; one qcluster with N workers)", "",
                  "| broker | workers | chain3 exec/s | chain3 steps/s | CPU ms/chain3 | saga5 exec/s | saga5 steps/s "
                  "| CPU ms/saga5 | both exec/s | both steps/s | API starts/s | queue tasks/exec | load |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in tp:
            c, s = r["chain3"], r["saga5"]
            both_s = c["elapsed_s"] + s["elapsed_s"]
            both_n = c["succeeded"] + s["succeeded"]
            both_steps = c["succeeded"] * 3 + s["succeeded"] * 5
            lines.append(
                f"| {r['broker']} | {r['workers']} | {c['executions_per_s']} | {c['steps_per_s']} "
                f"| {c['cpu_ms_per_execution']} | {s['executions_per_s']} | {s['steps_per_s']} "
                f"| {s['cpu_ms_per_execution']} | {both_n / both_s:.1f} | {both_steps / both_s:.1f} "
                f"| {c['api_starts_per_s']} | {fmt(c.get('queue_tasks_per_execution'), 2)} | {c['load']} |"
            )
        lines.append("")
    rows: list[tuple[str, str, str]] = []
    for r in by.get("overhead", []):
        if "error" not in r:
            rows += [
                ("2. overhead: extra ms per step (median gap Trama - direct)",
                 f"{r['extra_ms_per_step_median']} ms (Trama gap p50 {r['trama_step_gap_ms']['50']} ms, "
                 f"direct {r['direct_step_gap_ms']['50']} ms)", r["load"]),
                ("2. overhead: start request -> first call (median)",
                 f"{r['trama_start_to_first_call_ms_median']} ms", r["load"]),
                ("2. overhead: CPU ms per 10-step execution", f"{r['cpu_ms_per_execution']} ms", r["load"]),
            ]  # fmt: skip
    for r in by.get("callbacks", []):
        if "error" not in r:
            lat = r["latency_ms"]
            rows.append((f"3. callback -> next call, {r['broker']} (p50/p95/p99)",
                         f"{lat['p50']} / {lat['p95']} / {lat['p99']} ms; CPU {r['cpu_ms_per_execution']} ms/exec",
                         r["load"]))  # fmt: skip
    for r in by.get("timers", []):
        if "error" not in r:
            lt = r["lateness_s"]
            rows.append((f"4. timers: {r['executions']} sleeps due at once, lateness p50/p99/max",
                         f"{lt['p50']} / {lt['p99']} / {lt['max']} s; CPU {r['cpu_ms_per_execution']} ms/exec",
                         r["load"]))  # fmt: skip
    for r in by.get("waiting", []):
        if "error" not in r:
            rows.append((f"5. {r['executions_waiting']} WAITING: DB bytes per execution",
                         f"{r['db_bytes_per_waiting_execution']} B", ""))  # fmt: skip
            rows.append(
                ("5. DB bytes per finished 5-step saga (live rows)", f"{r['db_bytes_per_finished_saga5']} B", "")
            )
            for broker in ("orm", "redis"):
                idle = r.get(f"idle_{broker}")
                if idle:
                    rows.append((f"5. idle CPU, {broker} broker: qcluster / timers / total (% of a core)",
                                 f"{idle['qcluster_percent']} / {idle['timers_percent']} / "
                                 f"{idle['percent_of_one_core']} %", idle["load"]))  # fmt: skip
    for r in by.get("dbos", []):
        if "error" not in r:
            rows.append((
                f"6. DBOS {r['dbos_version']}: {r['workflows']} 5-step workflows, {r['worker_threads']} threads",
                f"{r['workflows_per_s']} wf/s, {r['steps_per_s']} steps/s, CPU {r['cpu_ms_per_workflow']} ms/wf",
                r["load"],
            ))  # fmt: skip
    for r in by.get("profile", []):
        if "error" not in r:
            rows.append(("profile: SQL statements, start / 3-step advance",
                         f"{r['queries_start']} / {r['queries_advance_3_steps']} {r['queries_advance_by_kind']}",
                         r["load"]))  # fmt: skip
            rows.append(("profile: in-process CPU ms, start_execution / advance (3 steps)",
                         f"{r['start_ms']['cpu']} / {r['advance_ms']['cpu']} ms (wall {r['start_ms']['wall']} / "
                         f"{r['advance_ms']['wall']})", r["load"]))  # fmt: skip
    if rows:
        lines += ["### Other scenarios", "", "| measure | result | load |", "|---|---|---|"]
        lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
        lines.append("")
    lines += ["### Targets", "", "| target | measured | met |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in targets(by)]
    lines.append("")
    for r in errors:
        lines.append(f"- {r['scenario']}: ERROR {r['error']}")
    return "\n".join(lines)


def targets(by: dict) -> list[tuple[str, str, str]]:
    out = []

    def met(ok: bool | None) -> str:
        return "n/a" if ok is None else ("met" if ok else "NOT met")

    tp = [r for r in by.get("throughput", []) if "error" not in r]
    if tp:
        cpu = {f"{r['broker']}/{r['workers']}w": r["chain3"]["cpu_ms_per_execution"] for r in tp}
        best = min(cpu.values())
        out.append(("Trama CPU < 8 ms per finished 3-step chain (start incl.)",
                    ", ".join(f"{k} {v}" for k, v in cpu.items()) + " ms", met(best < 8)))  # fmt: skip
        two = {r["broker"]: r["chain3"]["executions_per_s"] for r in tp if r["workers"] == 2}
        if two:
            out.append(("≥ 120 three-step executions/s with 2 workers",
                        ", ".join(f"{k} {v}/s" for k, v in two.items()), met(max(two.values()) >= 120)))  # fmt: skip
    for r in by.get("overhead", []):
        if "error" not in r:
            out.append(("median overhead < 2 ms per step", f"{r['extra_ms_per_step_median']} ms",
                        met(r["extra_ms_per_step_median"] < 2)))  # fmt: skip
    dbos = [r for r in by.get("dbos", []) if "error" not in r]
    if dbos and tp:
        peer = dbos[0]["steps_per_s"]
        ratios = {f"{r['broker']}/{r['workers']}w": r["saga5"]["steps_per_s"] / peer for r in tp}
        two = [v for k, v in ratios.items() if k.endswith("/2w")]
        out.append(("throughput ≥ DBOS (Trama saga5 steps/s ÷ DBOS steps/s)",
                    ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()) + f" (DBOS {peer} steps/s)",
                    met(max(two) >= 1 if two else None)))  # fmt: skip
    for r in by.get("timers", []):
        if "error" not in r:
            out.append(("timer lateness p99 < 1 s", f"{r['lateness_s']['p99']} s ({r['executions']} due at once)",
                        met(r["lateness_s"]["p99"] < 1)))  # fmt: skip
    for r in by.get("waiting", []):
        if "error" not in r:
            as_run = [t["db_bytes_per_execution_as_run"] for t in tp]
            mix = f"; {min(as_run)}-{max(as_run)} B as run (chain3+saga5 mix, dead tuples incl.)" if as_run else ""
            out.append(("< 4 KB of database per finished 5-step execution",
                        f"{r['db_bytes_per_finished_saga5']} B live{mix}",
                        met(r["db_bytes_per_finished_saga5"] < 4096)))  # fmt: skip
            for broker in ("orm", "redis"):
                idle = r.get(f"idle_{broker}")
                if idle:
                    out.append((f"idle worker < 2% of a core ({broker} broker)",
                                f"qcluster {idle['qcluster_percent']}%, +timers {idle['percent_of_one_core']}%",
                                met(idle["qcluster_percent"] < 2)))  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small counts (a few minutes)")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(SCENARIOS)}")
    parser.add_argument("--json", help="also write every raw result to this file")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one size, e.g. --set chains=1000 --set workers=2,4")  # fmt: skip
    parser.add_argument("--from-json", help="print the table of a saved --json file, running nothing")
    args = parser.parse_args()
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        print(report(saved["results"]))
        return
    size = dict(SIZES["quick" if args.quick else "full"])
    for item in args.set:
        key, _, value = item.partition("=")
        size[key] = [int(v) for v in value.split(",")] if key == "workers" else int(value)
    only = args.only.split(",") if args.only else SCENARIOS
    started = time.time()
    label = ("quick" if args.quick else "full") + (" with " + " ".join(args.set) if args.set else "")
    header = (
        f"Trama benchmarks ({label} sizes), revision {git_revision()}, "
        f"{time.strftime('%Y-%m-%d %H:%M')}\nMachine: {machine_line()}; load at start {loadavg():.2f}"
    )
    print(header, flush=True)
    results = collect(size, only)
    if args.json:
        Path(args.json).write_text(json.dumps({"header": header, "sizes": size, "results": results}, indent=1))
    print(report(results))
    print(f"\n(total {time.time() - started:.0f}s, load at end {loadavg():.2f})")


if __name__ == "__main__":
    main()
