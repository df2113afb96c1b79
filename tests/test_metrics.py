"""/metrics: django-prometheus' metrics plus trama_*, exact whichever process did the work."""

import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.db.models import Count, Max
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from definitions.services import store_inline_definition
from executions import metrics as db_metrics
from executions import tallies
from executions.models import FINAL_STATUSES, Execution, MetricTally, Step
from executions.services import advance_execution, start_execution
from tests.conftest import free_port
from tests.support.definitions import store
from tests.support.engine import drive
from tests.support.service import Reply
from tests.support.specs import chain, req, retry, sleep, task


class Samples(dict):
    """Every sample of /metrics as {(name, sorted labels...): value}; ``names``: every sample name
    /metrics declares, including a labelled metric's that has no sample yet."""

    names: set[str]


SAMPLE_SUFFIXES = ("", "_total", "_created", "_count", "_sum", "_bucket")


def scrape() -> Samples:
    response = Client().get("/metrics")
    assert response.status_code == 200
    samples = Samples()
    samples.names = set()
    for family in text_string_to_metric_families(response.content.decode()):
        samples.names.update(family.name + suffix for suffix in SAMPLE_SUFFIXES)
        for s in family.samples:
            samples[(s.name, *sorted(s.labels.items()))] = s.value
    return samples


def value(samples: Samples, name: str, **labels) -> float:
    """The value of one sample; fails when /metrics has none (so ``== 0`` cannot pass because a
    metric or a label was renamed). ``absent`` says a labelled sample is not there yet."""
    key = (name, *sorted(labels.items()))
    assert key in samples, f"/metrics has no sample {key}; of {name}: {[k for k in samples if k[0] == name]}"
    return samples[key]


def absent(samples: Samples, name: str, **labels) -> bool:
    """True when /metrics declares ``name`` but has no sample with these labels (nothing to count)."""
    assert name in samples.names, f"/metrics declares no metric {name!r}"
    return (name, *sorted(labels.items())) not in samples


def total(samples: Samples, name: str, **labels) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``; no such sample fails (never reads as 0)."""
    matching = [v for (n, *pairs), v in samples.items() if n == name and set(labels.items()) <= set(pairs)]
    assert matching, f"/metrics has no {name} sample with {labels}"
    return sum(matching)


def wait_final(ids: list, timeout: float = 25.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Execution.objects.filter(pk__in=ids).exclude(status__in=FINAL_STATUSES).exists():
            return
        time.sleep(0.1)
    raise AssertionError(list(Execution.objects.filter(pk__in=ids).values_list("status", flat=True)))


@pytest.fixture
def fresh(settings):
    settings.TRAMA_EGRESS_ALLOW = ["127.0.0.1"]
    settings.TRAMA_METRICS_CACHE_SECONDS = 0


@pytest.mark.workers
def test_counts_add_up_across_two_worker_processes(service, worker_pool, fresh):
    worker_pool.start_worker(TRAMA_WORKERS=1)
    worker_pool.start_worker(TRAMA_WORKERS=1)
    worker_pool.start_timers()
    service.default("POST", "/charge", Reply(500))
    ok = store(chain(service.url, "a", "b", "c"), "a", name="ok")
    undo = {"compensation": req("POST", service.url + "/refund")}
    bad = store(
        {
            "reserve": task(req("POST", service.url + "/reserve"), next="charge", **undo),
            "charge": task(req("POST", service.url + "/charge"), retry=retry(2)),
        },
        "reserve",
        name="bad",
    )
    ids = [start_execution(ok, {})[0].pk for _ in range(4)] + [start_execution(bad, {})[0].pk for _ in range(2)]
    wait_final(ids)
    m = scrape()

    assert total(m, "trama_executions_started_total", definition="ok") == 4
    assert total(m, "trama_executions_started_total", definition="bad") == 2
    assert total(m, "trama_executions_finished_total", definition="ok", status="SUCCEEDED") == 4
    assert total(m, "trama_executions_finished_total", definition="bad", status="COMPENSATED") == 2
    assert total(m, "trama_execution_duration_seconds_count", definition="ok", status="SUCCEEDED") == 4
    # 4 x (a, b, c) + 2 x reserve succeed; 2 x 2 charge attempts fail; 2 refunds.
    assert total(m, "trama_steps_total", node_type="task", phase="forward", outcome="succeeded") == 14
    assert total(m, "trama_steps_total", definition="bad", node="charge", outcome="failed") == 4
    assert total(m, "trama_step_failures_total", definition="bad", node="charge", kind="http_5xx") == 4
    assert total(m, "trama_retries_total", definition="bad", node="charge", phase="forward") == 2
    assert total(m, "trama_compensations_total", outcome="succeeded") == 2
    assert total(m, "trama_step_duration_seconds_count", node_type="task", phase="forward") == 18
    assert total(m, "trama_step_duration_seconds_bucket", definition="ok", node="a", le="+Inf") == 4
    assert total(m, "trama_executions_active", status="RUNNING") == 0
    assert total(m, "trama_queue_depth") == 0
    assert total(m, "trama_metrics_db_up") == 1
    # Every step row the workers wrote is on /metrics, label for label.
    rows = Step.objects.values("execution__definition__name", "node_id", "phase", "status").annotate(n=Count("id"))
    for r in rows:
        labels = {"definition": r["execution__definition__name"], "node": r["node_id"], "outcome": r["status"]}
        assert total(m, "trama_steps_total", phase=r["phase"], **labels) == r["n"]
    assert any(k[0].startswith("django_http_requests") for k in m)  # django-prometheus is still there


@pytest.mark.django_db(transaction=True)
def test_timers_pending_and_lateness_of_the_oldest_due(fresh):
    d = store({"nap": sleep(600)}, "nap", name="nap")
    ex = drive(start_execution(d, {})[0], until={"SLEEPING"})
    m = scrape()
    assert value(m, "trama_timers_pending", status="SLEEPING") == 1
    assert value(m, "trama_timers_due") == 0
    assert value(m, "trama_timer_oldest_due_lateness_seconds") == 0

    Execution.objects.filter(pk=ex.pk).update(due_at=timezone.now() - timedelta(seconds=30))
    m = scrape()
    assert absent(m, "trama_timers_pending", status="SLEEPING")
    assert value(m, "trama_timers_due") == 1
    assert 29 <= value(m, "trama_timer_oldest_due_lateness_seconds") < 60


@pytest.mark.django_db
def test_rejected_callbacks_are_counted_by_reason(fresh):
    before = scrape()
    client = Client()
    assert client.post("/api/v1/callbacks/forged.token/", {}, content_type="application/json").status_code == 403
    assert client.post("/api/v1/callbacks/", {}, content_type="application/json").status_code == 403
    after = scrape()
    for reason in ("invalid_token", "no_token"):
        key = ("trama_callbacks_rejected_total", ("reason", reason))
        assert after[key] - before.get(key, 0) == 1


@pytest.mark.django_db
def test_a_database_failure_leaves_metrics_up_and_says_so(fresh, monkeypatch):
    def broken():
        raise RuntimeError("database is gone")

    monkeypatch.setattr(db_metrics, "query_snapshot", broken)
    m = scrape()
    assert value(m, "trama_metrics_db_up") == 0
    assert any(k[0].startswith("django_http_requests") for k in m)


def _branching(service_url: str):
    """start -> fork(one | two | three) -> end: one execution, three branches."""
    nodes = {
        "start": task(req("POST", service_url + "/start"), next="fork"),
        "fork": {"type": "parallel", "branches": ["one", "two", "three"], "next": "end"},
        "one": task(req("POST", service_url + "/one")),
        "two": task(req("POST", service_url + "/two")),
        "three": task(req("POST", service_url + "/three")),
        "end": task(req("POST", service_url + "/end")),
    }
    return store(nodes, "start", name="branching")


@pytest.mark.django_db(transaction=True)
def test_parallel_branches_count_as_branches_not_executions(service, fresh):
    execution = start_execution(_branching(service.url), {})[0]
    drive_with_branches(execution)
    m = scrape()
    assert total(m, "trama_executions_started_total", definition="branching") == 1
    assert total(m, "trama_executions_finished_total", definition="branching", status="SUCCEEDED") == 1
    assert total(m, "trama_branches_started_total", definition="branching") == 3
    assert total(m, "trama_branches_finished_total", definition="branching", status="SUCCEEDED") == 3
    assert total(m, "trama_execution_duration_seconds_count", definition="branching") == 1
    # The branches' steps are the definition's steps all the same.
    assert total(m, "trama_steps_total", definition="branching", node="two", outcome="succeeded") == 1


def drive_with_branches(execution: Execution) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        family = Execution.objects.filter(pk=execution.pk) | Execution.objects.filter(parent=execution)
        if not family.exclude(status__in=FINAL_STATUSES).exists():
            return
        for pk in family.filter(due_at__lte=timezone.now()).values_list("pk", flat=True):
            advance_execution(pk)
        time.sleep(0.02)
    raise AssertionError("the execution or a branch did not finish")


@pytest.mark.django_db(transaction=True)
def test_failures_are_split_by_kind(service, fresh):
    service.default("POST", "/down", Reply(503)).default("POST", "/missing", Reply(404))
    service.default("POST", "/slow", Reply(200, delay_s=2.0))
    closed = f"http://127.0.0.1:{free_port()}"
    calls = {
        "http_5xx": req("POST", service.url + "/down"),
        "http_4xx": req("POST", service.url + "/missing"),
        "timeout": req("POST", service.url + "/slow", timeout_s=0.3),
        "network": req("POST", closed + "/x"),
        "egress": req("POST", "http://169.254.169.254/latest/meta-data/"),
        "template": req("POST", service.url + "/x", body={"v": "{{nodes.nowhere.response.body}}"}),
    }
    for kind, request in calls.items():
        drive(start_execution(store({"a": task(request)}, "a", name=f"fails-{kind}"), {})[0])
    m = scrape()
    for kind in calls:
        assert total(m, "trama_step_failures_total", definition=f"fails-{kind}", kind=kind) == 1, kind
        assert total(m, "trama_step_failures_total", definition=f"fails-{kind}") == 1, kind


@pytest.mark.django_db(transaction=True)
def test_settled_rows_are_folded_in_without_changing_a_counter_and_pruning_lowers_none(service, fresh, settings):
    settings.TRAMA_METRICS_SETTLE_SECONDS = 0
    definition = store(chain(service.url, "a", "b"), "a", name="folded")
    ids = [drive(start_execution(definition, {})[0]).pk for _ in range(3)]
    before = scrape()  # folds what has settled: everything, with no settle window
    assert MetricTally.objects.filter(key='["watermark"]').exists()
    # Three more, folded two steps at a time by successive scrapes: the counters never move meanwhile.
    ids += [drive(start_execution(definition, {})[0]).pk for _ in range(3)]
    expected = scrape()
    watermarks = [tallies.snapshot_watermark()]
    for _ in range(4):
        with transaction.atomic():
            tallies.fold(chunk=2, every=timedelta(0))
        watermarks.append(tallies.snapshot_watermark())
        assert _trama_counters(scrape()) == _trama_counters(expected)
    assert len(set(watermarks)) >= 3  # two steps at a time: the 6 new steps took several folds
    assert watermarks[-1] >= Step.objects.aggregate(last=Max("finished_at"))["last"]
    assert total(expected, "trama_steps_total", definition="folded") == 12
    assert total(before, "trama_steps_total", definition="folded") == 6
    # Pruning the history takes rows away, not counts.
    Execution.objects.filter(pk__in=ids).delete()
    after = scrape()
    assert _trama_counters(after) == _trama_counters(expected)
    assert total(after, "trama_executions_started_total", definition="folded") == 6


def _trama_counters(samples: Samples) -> dict:
    counters = ("_total", "_count", "_sum", "_bucket")
    # Rounded: a sum folded in and the same sum read from the rows may differ in the last float digit.
    return {k: round(v, 6) for k, v in samples.items() if k[0].startswith("trama_") and k[0].endswith(counters)}


@pytest.mark.django_db(transaction=True)
def test_inline_definitions_share_one_label(service, fresh):
    for name in ("adhoc-one", "adhoc-two"):
        source = {"name": name, "kind": "graph", "start": "a", "nodes": {"a": {"type": "task",
                  "request": {"method": "POST", "url": service.url + "/a"}}}}  # fmt: skip
        drive(start_execution(store_inline_definition(source), {})[0])
    m = scrape()
    assert total(m, "trama_executions_started_total", definition="(inline)") == 2
    assert total(m, "trama_steps_total", definition="(inline)", node="(inline)") == 2
    assert not [k for k in m if ("definition", "adhoc-one") in k[1:]]


@pytest.mark.django_db
def test_a_cached_scrape_reports_the_query_time_of_the_values_it_serves(settings):
    settings.TRAMA_METRICS_CACHE_SECONDS = 60
    collector = db_metrics.database_collector()
    collector._snapshot = None  # this process's cache, left by an earlier test
    fresh_scrape = scrape()
    time.sleep(0.05)
    cached = scrape()
    took = total(fresh_scrape, "trama_metrics_query_seconds")
    assert took > 0.0005  # several queries on a real database: not the microsecond a cache lookup takes
    assert total(cached, "trama_metrics_query_seconds") == took
    assert total(cached, "trama_metrics_age_seconds") >= 0.05


@pytest.mark.django_db
def test_database_metrics_of_django_prometheus_are_exported(fresh):
    Execution.objects.count()
    m = scrape()
    assert total(m, "django_db_execute_total", vendor=connection.vendor) > 0
    assert total(m, "django_db_query_duration_seconds_count", vendor=connection.vendor) > 0
