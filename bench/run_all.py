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
from bench.ui_pages import TARGET_MS as UI_TARGET_MS
from bench.ui_pages import table as ui_table

SIZES = {
    "quick": {"chains": 200, "sagas": 100, "workers": [1, 2, 4], "overhead": 60, "callbacks": 200,
              "timers": 1000, "waiting": 100_000, "idle": 15, "dbos": 100, "profile": 200,
              "inflight": 200, "inflight_delays": [0, 50, 500], "inflight_workers": 2, "inflight_concurrency": 100,
              "inflight_sequential": 30, "inflight_budget_s": 20, "ui_repeat": 10},
    "full": {"chains": 3000, "sagas": 2000, "workers": [1, 2, 4], "overhead": 300, "callbacks": 1000,
             "timers": 5000, "waiting": 100_000, "idle": 30, "dbos": 2000, "profile": 300,
             "inflight": 2000, "inflight_delays": [0, 50, 500], "inflight_workers": 2, "inflight_concurrency": 100,
             "inflight_sequential": 200, "inflight_budget_s": 60, "ui_repeat": 20},
}  # fmt: skip
SCENARIOS = ["throughput", "overhead", "callbacks", "timers", "waiting", "dbos", "inflight", "profile", "ui"]


# --quiet-load: each scenario waits (at most QUIET_WAIT_S) for the 1-minute load to fall below this.
QUIET_LOAD: float | None = None
QUIET_WAIT_S = 240


def wait_for_quiet() -> None:
    """Published figures are taken with the load under 1.5 before each run (the rows would otherwise
    begin under the load the previous one left)."""
    if QUIET_LOAD is None:
        return
    deadline = time.monotonic() + QUIET_WAIT_S
    while loadavg() >= QUIET_LOAD and time.monotonic() < deadline:
        time.sleep(5)


def scenario(script: str, *args: object) -> list[dict]:
    wait_for_quiet()
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
    if "inflight" in only:
        out += inflight(size)
    if "profile" in only:
        out += scenario("profile_hot_path.py", "--count", size["profile"])
    if "ui" in only:
        out += scenario("ui_pages.py", "--repeat", size["ui_repeat"])
    return out


def inflight(size: dict) -> list[dict]:
    """Scenario 7, per service delay: direct calls, DBOS, Trama with each broker; the same options for all."""
    out: list[dict] = []
    for delay in size["inflight_delays"]:
        common = ["--delay-ms", delay, "--count", size["inflight"], "--workers", size["inflight_workers"],
                  "--concurrency", size["inflight_concurrency"], "--sequential", size["inflight_sequential"],
                  "--sequential-budget-s", size["inflight_budget_s"]]  # fmt: skip
        out += scenario("inflight.py", "--system", "direct", *common)
        out += scenario("dbos_peer.py", "--workflow", "chain3", *common)
        for broker in ("orm", "redis"):
            out += scenario("inflight.py", "--system", "trama", "--broker", broker, *common)
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
    lines += inflight_table([r for r in by.get("inflight", []) if "error" not in r])
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
    for r in by.get("ui_pages", []):
        if "error" not in r:
            lines += [f"### Operator console pages at 100,000 executions ({r['repeat']} requests each)", "",
                      ui_table(r["pages"]), ""]  # fmt: skip
    lines += ["### Targets", "", "| target | measured | met |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in targets(by)]
    lines.append("")
    for r in errors:
        lines.append(f"- {r['scenario']}: ERROR {r['error']}")
    return "\n".join(lines)


def inflight_system(r: dict) -> str:
    return {"direct": "direct calls", "dbos": f"DBOS {r.get('dbos_version', '')}"}.get(
        r["system"], f"Trama, {r.get('broker')} broker"
    )


def inflight_table(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    order = {"direct": 0, "dbos": 1, "trama": 2}
    rows = sorted(rows, key=lambda r: (r["delay_ms"], order[r["system"]], r.get("broker") or ""))
    r0 = rows[0]
    lines = [f"### 7. In flight: the 3-call chain, {r0['executions']} started at once, {r0['workers']} worker "
             f"processes x {r0['concurrency']} in flight", "",
             "| service | system | in flight (set / peak) | exec/s | CPU ms/exec | PostgreSQL CPU ms/exec "
             "| RSS MB per worker | RSS MB all | DB bytes/exec | one at a time p50 / p99 ms | chain errors | load |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        rate = str(r["executions_per_s"]) + ("" if r["all_final"] else f" ({r['succeeded']}/{r['executions']} done)")
        one = r["one_at_a_time_ms"]
        workers = " / ".join(map(str, r["rss_mb_per_worker"])) if "rss_mb_per_worker" in r else "-"
        lines.append(
            f"| {fmt(r['delay_ms'], 0)} ms | {inflight_system(r)} | {r['in_flight']} / {r['in_flight_peak']} "
            f"| {rate} | {r['cpu_ms_per_execution']} | {fmt(r.get('pg_cpu_ms_per_execution'), 2)} | {workers} "
            f"| {fmt(r.get('rss_mb_all_processes'))} | {fmt(r.get('db_bytes_per_execution'))} "
            f"| {one['p50']} / {one['p99']} (n={one['n']}) | {r['chain_errors']} | {r['load']} |"
        )
    lines.append("")
    return lines


def inflight_targets(rows: list[dict], met) -> list[tuple[str, str, str]]:
    """Issue #15's targets, from scenario 7's Trama rows (2 worker processes)."""
    trama = [r for r in rows if r.get("system") == "trama" and "error" not in r]
    if not trama:
        return []
    out = []

    def each(pick) -> str:
        return ", ".join(f"{r['broker']} {fmt(r['delay_ms'], 0)} ms {pick(r)}" for r in trama)

    for delay, floor in ((50, 120), (500, 100), (0, 120)):
        at = {r["broker"]: r["executions_per_s"] for r in trama if r["delay_ms"] == delay}
        if at:
            out.append((f"{delay} ms service: ≥ {floor} chains/s with 2 worker processes",
                        ", ".join(f"{k} {v}/s" for k, v in at.items()), met(max(at.values()) >= floor)))  # fmt: skip
    cpu = [r["cpu_ms_per_execution"] for r in trama]
    out.append(("Trama CPU < 8 ms per finished 3-call chain, start included (scenario 7)",
                each(lambda r: r["cpu_ms_per_execution"]) + " ms", met(min(cpu) < 8)))  # fmt: skip
    alone = [r for r in trama if r["delay_ms"] == 0]
    if alone:
        out.append(("one execution at a time: start -> final p50 < 10 ms (0 ms service)",
                    ", ".join(f"{r['broker']} {r['one_at_a_time_ms']['p50']} ms" for r in alone),
                    met(max(r["one_at_a_time_ms"]["p50"] for r in alone) < 10)))  # fmt: skip
    held = [r for r in trama if r["in_flight_peak"] >= 150]
    out.append(
        (
            "all of Trama's processes < 700 MB resident while holding 150 calls in flight",
            each(lambda r: f"{r['rss_mb_all_processes']} MB at {r['in_flight_peak']} in flight"),
            met(max(r["rss_mb_all_processes"] for r in held) < 700) if held else "NOT met (never 150 in flight)",
        )
    )
    out.append(("≤ 3 KB of tables per finished 3-step execution (as run)",
                each(lambda r: f"{r['db_bytes_per_execution']} B"),
                met(max(r["db_bytes_per_execution"] for r in trama) <= 3072)))  # fmt: skip
    return out


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
            out.append((f"{r['executions']} sleeps due at once: the last one's next request within 10 s",
                        f"{r['lateness_s']['max']} s", met(r["lateness_s"]["max"] < 10)))  # fmt: skip
    out += inflight_targets(by.get("inflight", []), met)
    for r in by.get("ui_pages", []):
        if "error" not in r:
            worst = r["slowest"]
            out.append((f"every operator console page < {UI_TARGET_MS:.0f} ms (p95) at 100,000 executions",
                        f"slowest {worst['page']}: p95 {worst['p95_ms']} ms (load {worst['load']})",
                        met(not r["over_target"])))  # fmt: skip
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
                        help="override one size: --set chains=1000 --set workers=2,4 "
                             "--set inflight_delays=0,50")  # fmt: skip
    parser.add_argument("--from-json", help="print the table of a saved --json file, running nothing")
    parser.add_argument("--quiet-load", type=float, help="wait before each scenario until the load is below this")
    args = parser.parse_args()
    global QUIET_LOAD
    QUIET_LOAD = args.quiet_load
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        print(report(saved["results"]))
        return
    size = dict(SIZES["quick" if args.quick else "full"])
    for item in args.set:
        key, _, value = item.partition("=")
        size[key] = [int(v) for v in value.split(",")] if isinstance(size.get(key), list) else int(value)
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
