"""/metrics: django-prometheus' metrics plus trama_*, exact whichever process did the work."""

import time
from datetime import timedelta

import pytest
from django.db.models import Count
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from executions import metrics as db_metrics
from executions.models import FINAL_STATUSES, Execution, Step
from executions.services import start_execution
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

    assert value(m, "trama_executions_started_total", definition="ok") == 4
    assert value(m, "trama_executions_started_total", definition="bad") == 2
    assert value(m, "trama_executions_finished_total", definition="ok", status="SUCCEEDED") == 4
    assert value(m, "trama_executions_finished_total", definition="bad", status="COMPENSATED") == 2
    # 4 x (a, b, c) + 2 x reserve succeed; 2 x 2 charge attempts fail; 2 refunds.
    assert value(m, "trama_steps_total", node_type="task", phase="forward", outcome="succeeded") == 14
    assert value(m, "trama_steps_total", node_type="task", phase="forward", outcome="failed") == 4
    assert value(m, "trama_retries_total", node_type="task", phase="forward") == 2
    assert value(m, "trama_compensations_total", outcome="succeeded") == 2
    assert value(m, "trama_step_duration_seconds_count", node_type="task", phase="forward") == 18
    assert value(m, "trama_step_duration_seconds_bucket", node_type="task", phase="forward", le="+Inf") == 18
    assert value(m, "trama_executions_active", status="RUNNING") == 0
    assert value(m, "trama_queue_depth") == 0
    assert value(m, "trama_metrics_db_up") == 1
    # Every step row the workers wrote is on /metrics, label for label.
    rows = Step.objects.values("node_type", "phase", "status").annotate(n=Count("id"))
    for r in rows:
        labels = {"node_type": r["node_type"], "phase": r["phase"], "outcome": r["status"]}
        assert value(m, "trama_steps_total", **labels) == r["n"]
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
