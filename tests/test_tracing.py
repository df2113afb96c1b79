"""OpenTelemetry: one trace per execution, a span per step attempt, traceparent to the called service."""

import os
import re
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured
from opentelemetry import trace

from executions import telemetry, tracing
from executions.services import start_execution
from tests.support.definitions import store
from tests.support.engine import drive
from tests.support.service import Callback, Reply
from tests.support.specs import req, retry, task

TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-01$")


@pytest.fixture
def spans(exporter, settings):
    settings.TRAMA_EGRESS_ALLOW = ["127.0.0.1"]
    exporter.clear()
    return exporter


@pytest.mark.django_db(transaction=True)
def test_every_attempt_is_a_span_of_the_execution_trace_and_the_service_continues_it(service, spans):
    service.script("POST", "/b", Reply(503), Reply(200, {"ok": True}))
    d = store(
        {
            "a": task(req("POST", service.url + "/a"), next="b"),
            "b": task(req("POST", service.url + "/b"), retry=retry(2)),
        },
        "a",
    )
    ex = drive(start_execution(d, {})[0])
    assert ex.status == "SUCCEEDED"

    finished = spans.get_finished_spans()
    assert {s.context.trace_id for s in finished} == {ex.pk.int}
    root = next(s for s in finished if s.name == "execution t")
    assert root.parent is None and root.context.span_id == telemetry.span_id_of(ex.pk, "execution")
    assert root.attributes["trama.execution.status"] == "SUCCEEDED"
    calls = [s for s in finished if s.kind == trace.SpanKind.CLIENT]
    assert [
        (
            s.attributes["trama.node.id"],
            s.attributes["trama.node.type"],
            s.attributes["trama.attempt"],
            s.attributes["http.response.status_code"],
            s.attributes["trama.outcome"],
        )
        for s in calls
    ] == [("a", "task", 1, 200, "succeeded"), ("b", "task", 1, 503, "failed"), ("b", "task", 2, 200, "succeeded")]
    assert all(s.parent.span_id == root.context.span_id for s in calls)

    received = [TRACEPARENT.match(r.header("traceparent") or "") for r in service.requests]
    assert all(received), [r.header("traceparent") for r in service.requests]
    assert [m.group(1) for m in received] == [ex.pk.hex] * 3  # the trace id is the execution UUID
    assert [int(m.group(2), 16) for m in received] == [s.context.span_id for s in calls]


def async_node(request, next=None):
    node = task(request, next=next) | {
        "type": "async_task",
        "timeout_s": 30.0,
        "heartbeat_s": None,
        "on_timeout": "compensate",
        "callback": {"success_when": None, "failure_when": None},
    }
    node["request"] = {**request, "success_status": [202, 200]}
    return node


@pytest.mark.django_db(transaction=True)
def test_callback_span_links_back_to_the_waiting_span(service, spans, settings, live_server):
    settings.TRAMA_PUBLIC_URL = live_server.url
    callback = Callback({"status": "succeeded", "output": {"paid": True}}, delay_s=0.1)
    service.script("POST", "/pix", Reply(202, {"id": 1}, callback=callback))
    d = store({"pix": async_node(req("POST", service.url + "/pix"))}, "pix")
    ex = drive(start_execution(d, {})[0])
    service.join_callbacks()
    assert ex.status == "SUCCEEDED"

    finished = spans.get_finished_spans()
    wait = next(s for s in finished if s.name == "pix")
    assert wait.context.span_id == telemetry.wait_span_id(ex.pk, "pix", 1)
    assert wait.attributes["trama.outcome"] == "accepted"
    received = next(s for s in finished if s.name == "pix callback")
    assert received.context.trace_id == ex.pk.int
    assert received.attributes["trama.callback.outcome"] == "succeeded"
    assert received.links[0].context.span_id == wait.context.span_id
    assert received.links[0].context.trace_id == wait.context.trace_id
    assert (
        TRACEPARENT.match(service.calls(path="/pix")[0].header("traceparent")).group(2)
        == f"{wait.context.span_id:016x}"
    )


def test_tracing_is_off_by_default_without_an_sdk():
    """No OTEL_TRACES_EXPORTER: no TracerProvider is set up and no traceparent header is added."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    script = (
        "import django; django.setup()\n"
        "from opentelemetry import trace\n"
        "from executions import telemetry\n"
        "print(type(trace.get_tracer_provider()).__name__, telemetry.tracing_enabled(), telemetry.trace_headers())\n"
    )
    env["DJANGO_SETTINGS_MODULE"] = "trama_project.settings"
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.split("\n")[-2] == "ProxyTracerProvider False {}", out.stderr


def test_exporters_come_from_otel_traces_exporter(monkeypatch):
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert tracing.exporter_names() == []
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp, console")
    assert tracing.exporter_names() == ["otlp", "console"]
    with pytest.raises(ImproperlyConfigured):
        tracing._exporter("zipkin-by-carrier-pigeon")


@pytest.mark.workers
def test_spans_of_a_worker_process_reach_the_collector_when_qcluster_stops(service, worker_pool, otlp, settings):
    """Stopped right after its executions finish, qcluster's worker processes export what they still buffer."""
    from executions.models import FINAL_STATUSES, Execution
    from tests.support import wait_until
    from tests.support.specs import chain

    settings.TRAMA_EGRESS_ALLOW = ["127.0.0.1"]
    worker_pool.start_worker(TRAMA_WORKERS=2, **otlp.env())  # the batch processor's own delay: 5 s
    d = store(chain(service.url, "a", "b", "c"), "a", name="flushed")
    ids = [start_execution(d, {})[0].pk for _ in range(20)]
    wait_until(
        lambda: not Execution.objects.filter(pk__in=ids).exclude(status__in=FINAL_STATUSES).exists(),
        timeout=60,
        message="20 executions finished",
    )
    worker_pool.stop_all(timeout=30)
    assert [p.returncode for p in (w.proc for w in worker_pool.processes)] == [0], worker_pool.logs()

    def arrived():
        spans = otlp.received()
        roots = {s.trace_id for s in spans if s.name == "execution flushed"}
        steps = [s for s in spans if s.kind == trace.SpanKind.CLIENT.value + 1]  # proto kinds are 1 higher
        return roots, steps

    roots, steps = arrived()
    assert roots == {pk.hex for pk in ids}
    assert len(steps) == 60
