"""The web process as deployed: gunicorn with 2 worker processes and deploy/gunicorn.conf.py.

/metrics adds up both processes on every scrape, and no callback token reaches a
span, a log line or the access log.
"""

from __future__ import annotations

import json
import signal
import uuid
from datetime import timedelta

import pytest
import requests
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from executions.callback_tokens import mint_callback_token
from tests.conftest import free_port
from tests.support import wait_until

pytestmark = pytest.mark.workers


def start_web(worker_pool, **env):
    """gunicorn on a free port, answering /healthz; returns (base URL, its WorkerProcess)."""
    port = free_port()
    proc = worker_pool.start_gunicorn(port, "--workers", "2", **env)
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"gunicorn exited with {proc.returncode}:\n{worker_pool.logs()}")
        try:
            return requests.get(f"{base}/healthz", timeout=5).status_code == 200
        except (requests.ConnectionError, requests.Timeout):  # a worker still booting on a loaded machine
            return False

    wait_until(up, timeout=60, interval=0.1, message="gunicorn answers /healthz")
    return base, worker_pool.processes[-1]


def access_lines(web, path_part: str) -> list[dict]:
    """The JSON access lines (TRAMA_LOG_FORMAT=json) whose path contains ``path_part``, in order."""
    text = web.stdout_path.read_text()
    complete = text[: text.rfind("\n") + 1]  # the process may be writing the last line right now
    lines = [json.loads(x) for x in complete.splitlines() if x.startswith("{")]
    return [x for x in lines if x.get("event") == "access" and path_part in x["path"]]


def samples(text: str) -> dict[tuple, float]:
    return {
        (s.name, *sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_every_scrape_counts_the_requests_of_both_worker_processes(worker_pool):
    base, web = start_web(worker_pool, TRAMA_LOG_FORMAT="json", TRAMA_METRICS_CACHE_SECONDS=0)
    sent = 0
    # At least 20 refused callbacks, and until both worker processes answered some (the kernel picks).
    while sent < 20 or len({x["pid"] for x in access_lines(web, "/callbacks/")}) < 2:
        assert sent < 500, "one gunicorn worker answered every request"
        assert requests.post(f"{base}/api/v1/callbacks/forged.{sent}/", json={}, timeout=10).status_code == 403
        sent += 1
        wait_until(lambda n=sent: len(access_lines(web, "/callbacks/")) == n, message="the access line")

    scrapes = []
    while len(scrapes) < 6 or len({x["pid"] for x in access_lines(web, "/metrics")}) < 2:
        assert len(scrapes) < 200, "one gunicorn worker answered every scrape"
        response = requests.get(f"{base}/metrics", timeout=10)
        assert response.status_code == 200
        scrapes.append(samples(response.text))
        wait_until(lambda: len(access_lines(web, "/metrics")) == len(scrapes), message="the access line")

    rejected = ("trama_callbacks_rejected_total", ("reason", "invalid_token"))
    forbidden = ("django_http_responses_total_by_status_total", ("status", "403"))
    assert [(m.get(rejected), m.get(forbidden)) for m in scrapes] == [(sent, sent)] * len(scrapes)
    assert all(m[("trama_metrics_db_up",)] == 1 for m in scrapes)  # the database families are there too


TOKEN_CASES = [
    # (token, the receiver's answer): forged, past its deadline and grace, valid for no execution.
    (lambda: f"forged-{uuid.uuid4().hex}", 403),
    (lambda: mint_callback_token(str(uuid.uuid4()), "pay", 1, timezone.now() - timedelta(days=2)), 410),
    (lambda: mint_callback_token(str(uuid.uuid4()), "pay", 1, timezone.now() + timedelta(hours=1)), 404),
]


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_callback_tokens_reach_no_span_log_line_or_access_line(worker_pool, otlp, log_format):
    base, web = start_web(worker_pool, TRAMA_LOG_FORMAT=log_format, OTEL_BSP_SCHEDULE_DELAY=50, **otlp.env())
    tokens = []
    for make, status in TOKEN_CASES:
        tokens.append(make())
        response = requests.post(f"{base}/api/v1/callbacks/{tokens[-1]}/", json={"status": "succeeded"}, timeout=10)
        assert response.status_code == status, response.text

    def callback_spans():
        spans = [s for s in otlp.received() if "callbacks" in str(s.attributes.get("http.route", ""))]
        return spans if len(spans) >= len(tokens) else None

    spans = wait_until(callback_spans, timeout=30, message="the callback requests' server spans")
    worker_pool.stop_all()  # the log files are complete once gunicorn has exited
    assert web.proc.returncode == 0 or web.proc.returncode == -signal.SIGTERM, worker_pool.logs()

    redacted = "/api/v1/callbacks/<redacted>/"
    assert any(redacted in str(v) for s in spans for v in s.attributes.values()), [s.attributes for s in spans]
    out, err = web.stdout_path.read_text(), web.stderr_path.read_text()
    assert out.count(redacted) >= len(tokens), out  # the access log
    assert err.count(redacted) >= len(tokens), err  # django.request's 4xx lines
    for token in tokens:
        assert token not in out and token not in err
        assert not any(token in s.name or token in str(s.attributes) for s in otlp.received())
        assert not any(token.encode() in body for body in otlp.bodies)
