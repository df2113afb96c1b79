"""OpenTelemetry: one trace per execution, a span per step attempt, traceparent to the called service."""

import os
import re
import subprocess
import sys
from datetime import datetime, timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from opentelemetry import trace

from executions import telemetry, tracing
from executions.models import Execution
from executions.services import start_execution
from tests.support.definitions import store
from tests.support.engine import drive
from tests.support.service import Callback, Reply
from tests.support.specs import chain, req, retry, sleep, task

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


CALLER_TRACE, CALLER_SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


def spans_of(spans, *executions) -> list:
    ids = {str(ex.pk) for ex in executions}
    return [s for s in spans.get_finished_spans() if s.attributes.get("trama.execution.id") in ids]


@pytest.mark.django_db(transaction=True)
def test_a_callers_traceparent_puts_the_execution_under_the_callers_span(service, spans, api):
    store(chain(service.url, "a"), "a", name="called")
    answer = api.post(
        "/api/v1/executions/",
        {"definition": "called", "input": {}},
        format="json",
        HTTP_TRACEPARENT=f"00-{CALLER_TRACE}-{CALLER_SPAN}-01",
    )
    assert answer.status_code == 202, answer.content
    ex = drive(Execution.objects.get(pk=answer.json()["id"]))
    assert ex.trace_parent == f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"

    mine = spans_of(spans, ex)
    assert {s.context.trace_id for s in mine} == {int(CALLER_TRACE, 16)}
    root = next(s for s in mine if s.name == "execution called")
    assert (root.parent.trace_id, root.parent.span_id) == (int(CALLER_TRACE, 16), int(CALLER_SPAN, 16))
    start = next(s for s in mine if s.name == "start called")
    call = next(s for s in mine if s.kind == trace.SpanKind.CLIENT)
    assert start.parent.span_id == call.parent.span_id == root.context.span_id
    assert root.start_time <= start.start_time  # the root span covers the execution from its creation
    port = int(service.url.rsplit(":", 1)[1])
    assert (call.attributes["server.address"], call.attributes["server.port"]) == ("127.0.0.1", port)
    [sent] = service.requests
    assert TRACEPARENT.match(sent.header("traceparent")).group(1) == CALLER_TRACE


@pytest.mark.django_db(transaction=True)
def test_a_caller_that_does_not_sample_keeps_the_execution_out_of_the_traces(service, spans, api):
    store(chain(service.url, "a"), "a", name="unsampled")
    answer = api.post(
        "/api/v1/executions/",
        {"definition": "unsampled", "input": {}},
        format="json",
        HTTP_TRACEPARENT=f"00-{CALLER_TRACE}-{CALLER_SPAN}-00",
    )
    ex = drive(Execution.objects.get(pk=answer.json()["id"]))
    assert ex.status == "SUCCEEDED"
    assert spans_of(spans, ex) == []
    [sent] = service.requests
    assert sent.header("traceparent").startswith(f"00-{CALLER_TRACE}-") and sent.header("traceparent").endswith("-00")


@pytest.mark.django_db(transaction=True)
def test_parallel_branches_are_traced_under_the_parent_execution(service, spans):
    from tests.test_parallel import drive_all

    nodes = {
        "fork": {"type": "parallel", "branches": ["x", "nap"], "next": "after"},
        "x": task(req("POST", service.url + "/x")),
        "nap": sleep(0.1),
        "after": task(req("POST", service.url + "/after")),
    }
    parent = drive_all(start_execution(store(nodes, "fork", name="forked"), {})[0])
    assert parent.status == "SUCCEEDED"
    branches = {b.branch: b for b in parent.branches.all()}

    mine = spans_of(spans, parent, *branches.values())
    assert {s.context.trace_id for s in mine} == {parent.pk.int}  # one trace for the whole family
    root = next(s for s in mine if s.name == "execution forked")
    for head, branch in branches.items():
        branch_root = next(s for s in mine if s.name == f"branch {head}")
        assert branch_root.context.span_id == telemetry.span_id_of(branch.pk, "execution")
        assert branch_root.parent.span_id == root.context.span_id
        assert branch_root.attributes["trama.parent.execution.id"] == str(parent.pk)
    x_call = next(s for s in mine if s.name == "x")
    assert x_call.parent.span_id == telemetry.span_id_of(branches["x"].pk, "execution")
    nap = next(s for s in mine if s.name == "nap sleep")
    assert nap.parent.span_id == telemetry.span_id_of(branches["nap"].pk, "execution")
    join = next(s for s in mine if s.name == "fork parallel")
    assert join.parent.span_id == root.context.span_id and join.attributes["trama.pause.kind"] == "parallel"


@pytest.mark.django_db(transaction=True)
def test_back_offs_sleeps_and_callback_waits_are_spans_from_when_they_began(service, spans, settings, live_server):
    settings.TRAMA_PUBLIC_URL = live_server.url
    service.script("POST", "/a", Reply(503), Reply(200))
    service.script("POST", "/pix", Reply(202, callback=Callback({"status": "succeeded"}, delay_s=0.1)))
    nodes = {
        "a": task(req("POST", service.url + "/a"), next="nap", retry=retry(2, backoff_s=0.1)),
        "nap": sleep(0.1, next="pix"),
        "pix": async_node(req("POST", service.url + "/pix")),
    }
    ex = drive(start_execution(store(nodes, "a", name="paused"), {})[0])
    service.join_callbacks()
    assert ex.status == "SUCCEEDED"

    mine = {s.name: s for s in spans_of(spans, ex)}
    root = mine["execution paused"]
    steps = {(s.node_id, s.attempt): s for s in ex.steps.all()}
    expected = {
        "a backoff": ("backoff", 2, steps["a", 1].finished_at),  # waits for attempt 2, from attempt 1's failure
        "nap sleep": ("sleep", 1, steps["nap", 1].started_at),
        "pix wait": ("wait", 1, steps["pix", 1].started_at),
    }
    for name, (kind, attempt, began) in expected.items():
        span = mine[name]
        assert (span.attributes["trama.pause.kind"], span.attributes["trama.attempt"]) == (kind, attempt)
        assert span.parent.span_id == root.context.span_id
        assert span.start_time == int(began.timestamp() * 1_000_000_000)
        assert span.end_time >= span.start_time
    deadline = datetime.fromisoformat(mine["pix wait"].attributes["trama.pause.until"])
    assert deadline - steps["pix", 1].started_at == timedelta(seconds=30)  # the node's timeout_s


@pytest.mark.workers
def test_worker_processes_put_an_execution_and_its_branches_under_the_callers_span(
    service, worker_pool, otlp, settings, api
):
    """Started over HTTP with a traceparent, run by qcluster and the timer loop: one trace, the caller's."""
    import json

    from executions.models import FINAL_STATUSES
    from tests.support import wait_until

    settings.TRAMA_EGRESS_ALLOW = ["127.0.0.1"]
    env = otlp.env() | {"OTEL_BSP_SCHEDULE_DELAY": "200", "TRAMA_LOG_FORMAT": "json"}
    worker_pool.start_worker(TRAMA_WORKERS=2, **env)
    worker_pool.start_timers(**env)
    service.script("POST", "/x", Reply(503), Reply(200))
    nodes = {
        "fork": {"type": "parallel", "branches": ["x", "nap"], "next": "after"},
        "x": task(req("POST", service.url + "/x"), retry=retry(2, backoff_s=0.2)),
        "nap": sleep(0.3),
        "after": task(req("POST", service.url + "/after")),
    }
    store(nodes, "fork", name="fleet")
    answer = api.post(
        "/api/v1/executions/",
        {"definition": "fleet", "input": {}},
        format="json",
        HTTP_TRACEPARENT=f"00-{CALLER_TRACE}-{CALLER_SPAN}-01",
    )
    parent = Execution.objects.get(pk=answer.json()["id"])
    wait_until(
        lambda: Execution.objects.get(pk=parent.pk).status in FINAL_STATUSES, timeout=60, message="parent finished"
    )
    assert Execution.objects.get(pk=parent.pk).status == "SUCCEEDED"
    worker_pool.stop_all(timeout=30)  # the worker processes flush their spans as they exit

    branches = {b.branch: b for b in parent.branches.all()}
    family = {str(parent.pk), *(str(b.pk) for b in branches.values())}
    received = [s for s in otlp.received() if s.attributes.get("trama.execution.id") in family]
    assert {s.trace_id for s in received} == {CALLER_TRACE}
    by_name = {s.name: s for s in received}
    root = by_name["execution fleet"]
    assert root.parent_span_id == CALLER_SPAN
    for head in ("x", "nap"):
        assert by_name[f"branch {head}"].parent_span_id == root.span_id
    assert by_name["x backoff"].parent_span_id == by_name["branch x"].span_id
    assert by_name["nap sleep"].parent_span_id == by_name["branch nap"].span_id
    assert by_name["fork parallel"].parent_span_id == root.span_id
    calls = [s for s in received if s.kind == trace.SpanKind.CLIENT.value + 1]  # proto kinds are 1 higher
    assert sorted(s.name for s in calls) == ["after", "x", "x"]
    assert {(s.attributes["server.address"], s.attributes["server.port"]) for s in calls} == {
        ("127.0.0.1", int(service.url.rsplit(":", 1)[1]))
    }

    lines = [json.loads(line) for w in worker_pool.processes for line in w.stderr_path.read_text().splitlines()
             if line.startswith("{")]  # fmt: skip
    claims = [line for line in lines if line.get("previous_status") == "PENDING"]
    assert {line["execution_id"] for line in claims} == family  # every claim is logged, branches too
    assert all(line["trace_id"] == CALLER_TRACE for line in lines if line.get("execution_id") in family)


def test_only_a_well_formed_caller_context_is_stored():
    assert telemetry.caller_traceparent({}) == ""
    assert telemetry.caller_traceparent({"traceparent": "00-not-a-context-01"}) == ""
    assert telemetry.caller_traceparent({"traceparent": f"00-{'0' * 32}-{CALLER_SPAN}-01"}) == ""  # invalid trace id
    given = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
    assert telemetry.caller_traceparent({"traceparent": given, "tracestate": "k=v"}) == given
