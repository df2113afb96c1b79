"""Sample the real qcluster (sentinel, pusher, monitor and workers) with py-spy during a throughput burst.

Runs bench/throughput.py's scenario (one broker, N workers) and, for the
chain3 burst only, `py-spy record --subprocesses --format raw` on the qcluster
process. Prints where the non-idle samples go: per process role, and inclusive
shares of named components within the workers. Writes the collapsed stacks
(for flamegraph.pl / speedscope) and an SVG flame graph next to --out.

py-spy is a bench-only tool: `pip install -r bench/requirements-bench.txt`.

    .venv/bin/python bench/pyspy_workers.py --broker orm --workers 2 --chains 1000 --out /tmp/trama-workers
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common, throughput
from bench.common import emit

# Inclusive share of samples whose stack matches the pattern (labels nest, so they overlap).
COMPONENTS = [
    ("advance_execution (the engine's task)", r"\badvance_execution \("),
    ("  claim_execution", r"\bclaim_execution \("),
    ("  _Run._commit (write decision + steps)", r"\b_Run\._commit \("),
    ("  dispatch.send (HTTP call)", r"\bsend \(executions/dispatch"),
    ("  machine.decide", r"\bdecide \(executions/machine"),
    ("  copy.deepcopy", r"\bdeepcopy \(copy\.py"),
    ("  ORM compile (as_sql)", r"as_sql \(django/db/models/sql/compiler\.py"),
    ("  psycopg cursor execute", r"\bexecute \(psycopg/cursor\.py"),
    ("  logging", r"\(logging/__init__\.py"),
    ("django-q worker process (all)", r"\bworker \(django_q/worker\.py"),
    ("django-q pusher (fetch + unsign/unpickle)", r"\bpusher \(django_q/pusher\.py"),
    ("django-q monitor (ack + result handling)", r"\bmonitor \(django_q/monitor\.py"),
    ("django-q signing/pickle", r"\(django_q/signing\.py"),
    ("close_old_connections (per task)", r"\bclose_old_connections \("),
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--broker", choices=["orm", "redis"], default="orm")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chains", type=int, default=1000)
    parser.add_argument("--out", default="/tmp/trama-workers")
    parser.add_argument("--rate", type=int, default=200)
    args = parser.parse_args()
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(pyspy).exists():
        emit({"scenario": "pyspy", "error": "py-spy is not installed: pip install -r bench/requirements-bench.txt"})
        return
    raw = Path(args.out + ".txt")
    seen: dict[str, subprocess.Popen] = {}
    start = common.Processes.start

    def remember(self, *margs):
        proc = start(self, *margs)
        seen[margs[0]] = proc
        return proc

    common.Processes.start = remember
    burst = throughput.burst
    calls = []

    def sampled_burst(api, token, definition, count, *rest):
        calls.append(definition)
        if len(calls) != 2:  # 1 = warm-up, 2 = the chain3 burst, 3 = saga5
            return burst(api, token, definition, count if len(calls) == 1 else 1, *rest)
        cluster = str(seen["qcluster"].pid)
        command = [pyspy, "record", "--pid", cluster, "--subprocesses", "--format", "raw", "--rate", str(args.rate),
                   "--nonblocking", "-o", str(raw)]  # fmt: skip
        spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            return burst(api, token, definition, count, *rest)
        finally:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)

    throughput.burst = sampled_burst
    result = throughput.run(args.broker, args.workers, args.chains, 1)
    emit({"scenario": "pyspy", "chain3": result["chain3"], **analyse(raw, args.chains)})


def analyse(raw: Path, executions: int) -> dict:
    if not raw.exists():
        return {"error": f"py-spy wrote nothing to {raw}"}
    stacks: Counter = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[stack] += int(count)
    total = sum(stacks.values())
    roles: Counter = Counter()
    for stack, n in stacks.items():
        if "advance_execution" in stack or "worker (django_q/worker.py" in stack:
            roles["worker"] += n
        elif "pusher (django_q/pusher.py" in stack:
            roles["pusher"] += n
        elif "monitor (django_q/monitor.py" in stack:
            roles["monitor"] += n
        elif "guard (django_q/" in stack or "Sentinel" in stack or "sentinel" in stack:
            roles["sentinel"] += n
        else:
            roles["other"] += n
    components = {
        label: round(100 * sum(n for s, n in stacks.items() if re.search(pattern, s)) / max(1, total), 1)
        for label, pattern in COMPONENTS
    }
    svg = raw.with_suffix(".svg")
    flamegraph = shutil.which("flamegraph.pl")
    if flamegraph:
        with svg.open("w") as out:
            subprocess.run([flamegraph], stdin=raw.open(), stdout=out, check=False)
    return {
        "samples": total,
        "samples_per_execution": round(total / max(1, executions), 2),
        "roles_percent": {k: round(100 * v / max(1, total), 1) for k, v in roles.most_common()},
        "components_percent_of_all_samples": components,
        "collapsed_stacks": str(raw),
    }


if __name__ == "__main__":
    main()
