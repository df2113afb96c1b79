"""Draw docs/grafana-dashboard.json panel by panel over a recorded workload (no Grafana needed).

Runs Trama as deployed (gunicorn with deploy/gunicorn.conf.py and 2 workers, a
qcluster, the timer loop) on a database of its own, against a scripted service
that sometimes fails, answers slowly or calls back. For ``--minutes`` it starts
a mix of executions (plain chains, flaky calls with retries and compensations,
callbacks, parallel branches, sleeps) and scrapes /metrics every
``--every`` seconds. Each panel's PromQL is then evaluated from those scrapes
by the small evaluator below (``rate`` over a window of ``--window`` seconds
instead of 5 minutes, so a short recording shows something), and drawn with
matplotlib into docs/img/dashboard-<n>.png.

    .venv/bin/pip install -r bench/requirements-bench.txt   # matplotlib
    .venv/bin/python bench/dashboard_render.py --minutes 4
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path
from urllib.request import urlopen

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prometheus_client.parser import text_string_to_metric_families

from bench.common import BENCH_ENV, PYTHON, REPO, free_port, fresh_database, setup_django, wait_http

DASHBOARD = REPO / "docs" / "grafana-dashboard.json"
IMAGES = REPO / "docs" / "img"
Series = dict[tuple, float]  # sorted label pairs -> value


# --- Recording --------------------------------------------------------------------------------------


def start_trama(env: dict[str, str], port: int) -> list[subprocess.Popen]:
    def spawn(*args: str) -> subprocess.Popen:
        return subprocess.Popen(
            args, cwd=REPO, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    gunicorn = ("-m", "gunicorn", "trama_project.wsgi", "-c", "deploy/gunicorn.conf.py")
    return [
        spawn(PYTHON, *gunicorn, "--bind", f"127.0.0.1:{port}", "--workers", "2"),
        spawn(PYTHON, "manage.py", "qcluster"),
        spawn(PYTHON, "manage.py", "trama_timers"),
    ]


def definitions(url: str) -> dict:
    """The workload's definitions, stored through the same validation as the API's."""
    from definitions.services import store_definition

    def call(path: str, **extra) -> dict:
        return {"type": "task", "request": {"method": "POST", "url": f"{url}{path}"}} | extra

    retry = {"max_attempts": 3, "backoff_s": 0.2}
    graphs = {
        "orders": {"reserve": call("/reserve", next="charge", compensation={"method": "POST", "url": f"{url}/undo"}),
                   "charge": call("/flaky", retry=retry, next="ship"), "ship": call("/slow")},
        "signup": {"create": call("/create", next="welcome"), "welcome": call("/create")},
        "payments": {"pay": {"type": "async_task", "timeout_s": 5,
                             "request": {"method": "POST", "url": f"{url}/pay", "success_status": [202]}}},
        "fanout": {"fork": {"type": "parallel", "branches": ["one", "two", "three"]},
                   "one": call("/create"), "two": call("/slow"), "three": call("/flaky", retry=retry)},
        "reminders": {"nap": {"type": "sleep", "duration_s": 20, "next": "remind"}, "remind": call("/create")},
    }  # fmt: skip
    return {
        name: store_definition({"name": name, "kind": "graph", "start": next(iter(nodes)), "nodes": nodes})
        for name, nodes in graphs.items()
    }


def script(service) -> None:
    from tests.support.service import Callback, Reply

    service.default("POST", "/flaky", Reply(200))  # record() scripts some 503s and 404s
    service.default("POST", "/slow", Reply(200, delay_s=0.3))
    service.default("POST", "/pay", Reply(202, callback=Callback({"status": "succeeded"}, delay_s=1.0)))


def record(url: str, minutes: float, every: float, service, defs: dict) -> list[tuple[float, Series]]:
    """Start executions at a varying rate and scrape /metrics every ``every`` seconds."""
    from executions.services import start_execution
    from tests.support.service import Reply

    scrapes: list[tuple[float, Series]] = []
    began = time.monotonic()
    next_scrape = began
    weights = {"orders": 4, "signup": 4, "payments": 2, "fanout": 1, "reminders": 1}
    while (now := time.monotonic()) < began + minutes * 60:
        burst = 1 + int(3 * (1 + math.sin((now - began) / 40)))  # a slow wave of load
        for _ in range(burst):
            name = random.choices(list(weights), list(weights.values()))[0]
            if name in ("orders", "fanout") and random.random() < 0.4:
                service.script("POST", "/flaky", Reply(random.choice([503, 503, 404])))
            start_execution(defs[name], {})
        if random.random() < 0.1:
            urlopen_quiet(f"{url}/api/v1/callbacks/forged.token/")  # a rejected callback now and then
        if now >= next_scrape:
            scrapes.append((now - began, scrape(url)))
            next_scrape += every
        time.sleep(1.0)
    return scrapes


def urlopen_quiet(url: str) -> None:
    from urllib.request import Request

    with contextlib.suppress(OSError):  # the 403 raises HTTPError: expected
        urlopen(Request(url, data=b"{}", headers={"Content-Type": "application/json"}), timeout=10)


def scrape(url: str) -> Series:
    with urlopen(f"{url}/metrics", timeout=30) as response:
        text = response.read().decode()
    return {
        (s.name, *sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


# --- A small PromQL evaluator: what the dashboard uses, over the recorded scrapes --------------------

TOKEN = re.compile(
    r'\s*(?:(\d+\.?\d*(?:e[+-]?\d+)?)|([A-Za-z_:][A-Za-z0-9_:]*)|("(?:[^"\\]|\\.)*")|(!=|=~|[-+*/(){}\[\],=:<>]))'
)


def tokens(expr: str) -> list[str]:
    out, pos = [], 0
    while pos < len(expr.rstrip()):
        match = TOKEN.match(expr, pos)
        if match is None:
            raise ValueError(f"cannot read {expr[pos:]!r}")
        out.append(next(g for g in match.groups() if g is not None))
        pos = match.end()
    return out


class Parser:
    """expr := term ('/' term)* ; term := number | agg | func | selector | '(' expr ')' ; each optionally [range]."""

    AGGREGATIONS = {"sum", "max", "min", "topk"}

    def __init__(self, expr: str):
        self.toks, self.i = tokens(expr), 0

    def peek(self) -> str | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, expected: str | None = None) -> str:
        tok = self.toks[self.i]
        if expected is not None and tok != expected:
            raise ValueError(f"expected {expected!r}, got {tok!r}")
        self.i += 1
        return tok

    def expr(self):
        node = self.term()
        while self.peek() == "/":
            self.take()
            node = ("div", node, self.term())
        return node

    def term(self):
        tok = self.take()
        if re.fullmatch(r"\d.*", tok):
            node = ("num", float(tok))
        elif tok == "(":
            node = self.expr()
            self.take(")")
        elif tok in self.AGGREGATIONS:
            grouping = self.grouping()
            self.take("(")
            args = [self.expr()]
            while self.peek() == ",":
                self.take()
                args.append(self.expr())
            self.take(")")
            node = ("agg", tok, grouping or self.grouping(), args)
        elif self.peek() == "(":
            self.take("(")
            args = [self.expr()]
            while self.peek() == ",":
                self.take()
                args.append(self.expr())
            self.take(")")
            node = ("func", tok, args)
        else:
            node = ("sel", tok, self.matchers())
        if self.peek() == "[":
            self.take("[")
            window = self.take()
            while self.take() != "]":
                pass
            node = ("range", node, window)
        return node

    def grouping(self):
        if self.peek() not in ("by", "without"):
            return None
        mode = self.take()
        self.take("(")
        labels = []
        while self.peek() != ")":
            tok = self.take()
            if tok != ",":
                labels.append(tok)
        self.take(")")
        return (mode, labels)

    def matchers(self) -> list[tuple[str, str, str]]:
        if self.peek() != "{":
            return []
        self.take("{")
        out = []
        while self.peek() != "}":
            label, op, value = self.take(), self.take(), json.loads(self.take())
            out.append((label, op, value))
            if self.peek() == ",":
                self.take()
        self.take("}")
        return out


class Evaluator:
    def __init__(self, scrapes: list[tuple[float, Series]], window: float):
        self.scrapes, self.window = scrapes, window

    def at(self, t: float) -> Series:
        """The last scrape taken at or before ``t``."""
        best = self.scrapes[0][1]
        for when, samples in self.scrapes:
            if when > t:
                break
            best = samples
        return best

    def eval(self, node, t: float) -> dict[tuple, float]:
        kind = node[0]
        if kind == "num":
            return {(): node[1]}
        if kind == "sel":
            return self.select(node[1], node[2], t)
        if kind == "div":
            a, b = self.eval(node[1], t), self.eval(node[2], t)
            return {k: v / b[k] for k, v in a.items() if b.get(k)}
        if kind == "agg":
            return self.aggregate(node, t)
        if kind == "func":
            return self.function(node, t)
        raise ValueError(f"cannot evaluate {node} alone")

    def select(self, name: str, matchers: list, t: float) -> dict[tuple, float]:
        out = {}
        for (sample, *pairs), value in self.at(t).items():
            labels = dict(pairs)
            if sample == name and all(self.matches(labels.get(k, ""), op, v) for k, op, v in matchers):
                out[tuple(pairs)] = value
        return out

    @staticmethod
    def matches(actual: str, op: str, wanted: str) -> bool:
        return {"=": actual == wanted, "!=": actual != wanted}.get(op) or (op == "=~" and re.fullmatch(wanted, actual))

    def aggregate(self, node, t: float) -> dict[tuple, float]:
        _, op, grouping, args = node
        if op == "topk":
            k, vector = int(self.eval(args[0], t)[()]), self.eval(args[1], t)
            return dict(sorted(vector.items(), key=lambda kv: -kv[1])[:k])
        groups: dict[tuple, list[float]] = {}
        for labels, value in self.eval(args[0], t).items():
            groups.setdefault(self.key(labels, grouping), []).append(value)
        combine = {"sum": sum, "max": max, "min": min}[op]
        return {key: combine(values) for key, values in groups.items()}

    @staticmethod
    def key(labels: tuple, grouping) -> tuple:
        if grouping is None:
            return ()
        mode, names = grouping
        keep = (lambda n: n in names) if mode == "by" else (lambda n: n not in names)
        return tuple((n, v) for n, v in labels if keep(n))

    def function(self, node, t: float) -> dict[tuple, float]:
        _, name, args = node
        if name == "rate":
            inner = args[0][1]  # ("range", inner, window): the window is --window, not the dashboard's 5m
            now, then = self.eval(inner, t), self.eval(inner, max(t - self.window, 0.0))
            span = min(self.window, t) or 1.0
            return {k: max(v - then.get(k, 0.0), 0.0) / span for k, v in now.items()}
        if name == "histogram_quantile":
            return self.quantile(self.eval(args[0], t)[()], self.eval(args[1], t))
        raise ValueError(f"no function {name}")

    @staticmethod
    def quantile(q: float, buckets: dict[tuple, float]) -> dict[tuple, float]:
        series: dict[tuple, list[tuple[float, float]]] = {}
        for labels, count in buckets.items():
            le = float(dict(labels)["le"])
            series.setdefault(tuple(p for p in labels if p[0] != "le"), []).append((le, count))
        out = {}
        for labels, points in series.items():
            points.sort()
            total = points[-1][1]
            if total <= 0:
                continue
            lower_bound, lower_count = 0.0, 0.0
            for bound, count in points:
                if count >= q * total:
                    if bound == float("inf"):
                        out[labels] = lower_bound
                    else:
                        share = (q * total - lower_count) / max(count - lower_count, 1e-12)
                        out[labels] = lower_bound + (bound - lower_bound) * share
                    break
                lower_bound, lower_count = bound, count
        return out


# --- Drawing ------------------------------------------------------------------------------------------


def draw(scrapes: list[tuple[float, Series]], window: float) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    evaluator = Evaluator(scrapes, window)
    times = [t for t, _ in scrapes if t >= window]
    IMAGES.mkdir(exist_ok=True)
    drawn = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        fig, ax = plt.subplots(figsize=(6.4, 2.8), dpi=100)
        for target in panel["targets"]:
            tree = Parser(target["expr"]).expr()
            lines: dict[tuple, list[tuple[float, float]]] = {}
            for t in times:
                for labels, value in evaluator.eval(tree, t).items():
                    lines.setdefault(labels, []).append((t, value))
            for labels, points in sorted(lines.items()):
                legend = re.sub(
                    r"\{\{(\w+)\}\}", lambda m, d=dict(labels): d.get(m.group(1), ""), target["legendFormat"]
                )
                ax.plot([p[0] for p in points], [p[1] for p in points], label=legend, linewidth=1.2)
        ax.set_title(panel["title"], fontsize=10, loc="left")
        ax.set_xlabel("seconds into the recording", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6, loc="upper left", ncol=3, frameon=False)
        fig.tight_layout()
        path = IMAGES / f"dashboard-{panel['id']:02d}.png"
        fig.savefig(path)
        plt.close(fig)
        drawn.append((panel["title"], path.name))
    return drawn


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--every", type=float, default=5.0, help="seconds between scrapes")
    parser.add_argument("--window", type=float, default=30.0, help="rate() window, seconds")
    parser.add_argument("--database", default="trama_bench_dashboard")
    args = parser.parse_args()
    url = fresh_database(args.database)
    env = (
        os.environ
        | BENCH_ENV
        | {"DATABASE_URL": url, "TRAMA_METRICS_CACHE_SECONDS": "0", "TRAMA_HEARTBEAT_SECONDS": "2"}
    )
    port = free_port()
    env["TRAMA_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
    setup_django(url, **{k: v for k, v in env.items() if k.startswith("TRAMA_")})
    from tests.support.service import TestService

    service = TestService().start()
    script(service)
    procs = start_trama(env, port)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", timeout=120)
        scrapes = record(f"http://127.0.0.1:{port}", args.minutes, args.every, service, definitions(service.url))
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=60)
        service.stop()
    for title, name in draw(scrapes, args.window):
        print(f"![{title}](img/{name})")


if __name__ == "__main__":
    main()
