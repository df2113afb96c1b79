"""docs/grafana-dashboard.json: every PromQL expression reads series a live /metrics has.

A real workload (2 gunicorn worker processes, a qcluster, the timer loop, a
service that fails, calls back and is slow) runs first; then every metric
name each panel's expressions use must have samples on the deployed web
process's /metrics, and every label the expressions group by must be there.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import requests

from definitions.services import store_definition
from executions.services import start_execution
from tests.support.definitions import store
from tests.support.service import Callback, Reply
from tests.support.specs import chain, req, retry, sleep, task
from tests.test_metrics import wait_final
from tests.test_web_process import samples, start_web

pytestmark = pytest.mark.workers

DASHBOARD = Path(__file__).resolve().parents[1] / "docs" / "grafana-dashboard.json"
METRICS_DOC = DASHBOARD.parent / "metrics.md"
# Words of PromQL that are not metric names (functions and aggregations are told by the "(" after them).
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or", "unless"}
KEYWORDS |= {"inf", "nan"}


def expressions() -> list[tuple[str, str]]:
    """(where, PromQL) of every dashboard target and every alert docs/metrics.md proposes."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    exprs = [(panel["title"], target["expr"]) for panel in panels for target in panel["targets"]]
    alerts = METRICS_DOC.read_text().split("## Alerts to start from", 1)[1].split("\n## ", 1)[0]
    rows = [line.split(" | ") for line in alerts.splitlines() if line.startswith("| ") and "`" in line]
    assert len(rows) >= 5, "the alert table of docs/metrics.md"
    return exprs + [(f"alert {row[0][2:]}", row[1].split("`")[1]) for row in rows]


def parse(expr: str) -> tuple[set[str], set[str]]:
    """The metric names and the grouping labels of a PromQL expression (fails on unbalanced brackets)."""
    depth = {"(": 0, "[": 0, "{": 0}
    closing = {")": "(", "]": "[", "}": "{"}
    for char in re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr):
        if char in depth:
            depth[char] += 1
        elif char in closing:
            depth[closing[char]] -= 1
            assert depth[closing[char]] >= 0, f"unbalanced {char!r} in {expr}"
    assert not any(depth.values()), f"unclosed bracket in {expr}"
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    labels = {x.strip() for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", text) for x in group.split(",")}
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", "", text)  # label lists
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges and subqueries
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        if match.group() not in KEYWORDS and not text[match.end() :].lstrip().startswith("("):
            names.add(match.group())
    return names, labels - {"", "instance", "pod"}


def test_the_parser_finds_names_and_labels_and_refuses_broken_expressions():
    names, labels = parse('sum by (kind) (rate((max without(instance, pod) (x_total{a="b(c"}))[5m:])) / y')
    assert names == {"x_total", "y"} and labels == {"kind"}
    with pytest.raises(AssertionError):
        parse("sum(rate(x_total[5m])")


def test_every_dashboard_expression_reads_series_of_a_live_scrape(worker_pool, service):
    beat = {"TRAMA_HEARTBEAT_SECONDS": 0.3}
    base, _web = start_web(worker_pool, TRAMA_METRICS_CACHE_SECONDS=0, **beat)
    worker_pool.start_worker(TRAMA_WORKERS=1, TRAMA_PUBLIC_URL=base, **beat)
    worker_pool.start_timers(**beat)
    ids = run_workload(service)
    requests.post(f"{base}/api/v1/callbacks/forged.token/", json={}, timeout=10)  # a rejected callback
    wait_final(ids, timeout=60)

    missing: list[str] = []
    deadline = time.monotonic() + 30
    while True:
        scrape = samples(requests.get(f"{base}/metrics", timeout=10).text)
        missing = unmet(scrape)
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(0.5)  # the heartbeats of the worker and the timer loop arrive every 0.3 s
    assert not missing, "\n".join(missing)


def unmet(scrape: dict[tuple, float]) -> list[str]:
    """What each panel needs and the scrape lacks: a metric without samples, a label none of them has."""
    problems = []
    for title, expr in expressions():
        names, labels = parse(expr)
        assert names, f"{title}: no metric in {expr}"
        keys = [key for key in scrape if key[0] in names]
        for name in names - {key[0] for key in keys}:
            problems.append(f"{title}: no sample of {name}")
        present = {label for key in keys for label, _ in key[1:]}
        for label in labels - present:
            problems.append(f"{title}: no {label!r} label on {sorted(names)}")
    return problems


def run_workload(service) -> list:
    """Executions that touch every family: success, HTTP failure with retry and compensation, a
    callback, parallel branches, and one sleeping (a pending timer)."""
    service.default("POST", "/charge", Reply(500))
    service.default("POST", "/pay", Reply(202, callback=Callback({"status": "succeeded"}, delay_s=0.2)))
    ok = store(chain(service.url, "a", "b"), "a", name="ok")
    undo = {"compensation": req("POST", service.url + "/refund")}
    bad = store(
        {
            "reserve": task(req("POST", service.url + "/reserve"), next="charge", **undo),
            "charge": task(req("POST", service.url + "/charge"), retry=retry(2)),
        },
        "reserve",
        name="bad",
    )
    # fmt: off
    paying = store_definition({"name": "paying", "kind": "graph", "start": "pay", "nodes": {
        "pay": {"type": "async_task", "request": {"method": "POST", "url": service.url + "/pay",
                                                  "success_status": [202]}, "timeout_s": 30}}})
    forking = store_definition({"name": "forking", "kind": "graph", "start": "fork", "nodes": {
        "fork": {"type": "parallel", "branches": ["one", "two"]},
        "one": {"type": "task", "request": {"method": "POST", "url": service.url + "/one"}},
        "two": {"type": "task", "request": {"method": "POST", "url": service.url + "/two"}}}})
    # fmt: on
    start_execution(store({"nap": sleep(600)}, "nap", name="nap"), {})
    return [start_execution(d, {})[0].pk for d in (ok, ok, bad, paying, forking)]
