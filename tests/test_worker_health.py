"""Worker health on /metrics: every worker process and timer loop reports through the database."""

import time
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from executions.models import Execution, WorkerHeartbeat
from executions.services import start_execution
from tests.support.definitions import store
from tests.support.specs import chain, sleep
from tests.test_metrics import Samples, scrape, total, wait_final

BEAT = 1.0  # long enough that a loaded machine does not miss three in a row
# The worker derives step times from the database clock read at its claim plus its own monotonic clock.
CLOCK_SLACK_S = 0.25


@pytest.fixture
def beating(settings):
    settings.TRAMA_EGRESS_ALLOW = ["127.0.0.1"]
    settings.TRAMA_METRICS_CACHE_SECONDS = 0
    settings.TRAMA_HEARTBEAT_SECONDS = BEAT  # /metrics counts a process live for three beats


def scrape_until(check, timeout: float = 30.0) -> Samples:
    """Scrape until ``check(samples)`` holds (heartbeats arrive every BEAT seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape()
        try:
            check(samples)
            return samples
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        time.sleep(BEAT)


@pytest.mark.workers
def test_every_worker_process_and_the_timer_loop_report_their_health(service, worker_pool, beating):
    env = {"TRAMA_HEARTBEAT_SECONDS": BEAT, "TRAMA_WORKER_CONCURRENCY": 4, "TRAMA_WORKERS": 1}
    worker_pool.start_worker(**env)
    worker_pool.start_worker(**env)
    worker_pool.start_timers(TRAMA_HEARTBEAT_SECONDS=BEAT)
    ids = [start_execution(store(chain(service.url, "a", "b"), "a", name="healthy"), {})[0].pk for _ in range(6)]
    wait_final(ids)
    # A worker that died holding an execution: its lease lapsed; the timer loop hands it to another.
    napping = start_execution(store({"nap": sleep(600)}, "nap", name="nap"), {})[0]
    scrape_until(lambda m: _is(Execution.objects.get(pk=napping.pk).status == "SLEEPING"))
    past = timezone.now() - timedelta(seconds=1)
    Execution.objects.filter(pk=napping.pk).update(lease_until=past, due_at=past, nudged_at=None)

    def reported(m: Samples) -> None:
        assert total(m, "trama_processes_reporting", role="worker") == 2
        assert total(m, "trama_processes_reporting", role="timer") == 1
        assert total(m, "trama_worker_capacity", role="worker") == 8
        assert total(m, "trama_leases_lapsed_total", role="timer") == 1
        # Every execution was claimed at least once, by one process or the other.
        assert total(m, "trama_schedule_to_start_seconds_count", role="worker") >= len(ids) + 1

    m = scrape_until(reported)
    workers = {dict(k[1:])["process"] for k in m if k[0] == "trama_worker_capacity"}
    assert len(workers) == 2 and workers <= set(WorkerHeartbeat.objects.values_list("process", flat=True))
    assert total(m, "trama_worker_executions_in_flight", role="worker") >= 0
    assert total(m, "trama_fence_conflicts_total", role="worker") == 0
    assert total(m, "trama_db_write_retries_total", role="worker") == 0
    assert total(m, "trama_timer_enqueued_total", role="timer") >= 1
    assert 0 <= total(m, "trama_timer_lag_seconds", role="timer") < 60
    inf = total(m, "trama_schedule_to_start_seconds_bucket", role="worker", le="+Inf")
    assert inf == total(m, "trama_schedule_to_start_seconds_count", role="worker")

    worker_pool.stop_all()  # a process that stops writes its last beat; after three beats it is gone
    time.sleep(4 * BEAT)
    gone = scrape()
    assert total(gone, "trama_processes_reporting", role="worker") == 0


def _is(condition: bool) -> None:
    assert condition


def _schedule(m: Samples) -> tuple[float, float]:
    """(claims counted, seconds summed) of the workers' schedule-to-start histogram."""
    labels = {"role": "worker"}
    return total(m, "trama_schedule_to_start_seconds_count", **labels), total(
        m, "trama_schedule_to_start_seconds_sum", **labels
    )


def _claims_counted(n: int) -> Callable[[Samples], None]:
    return lambda m: _is(_schedule(m)[0] == n)


@pytest.mark.workers
def test_schedule_to_start_after_a_sleep_is_measured_from_its_end_not_from_before_it(worker_pool, beating):
    worker_pool.start_worker(TRAMA_HEARTBEAT_SECONDS=BEAT, TRAMA_WORKERS=1)
    worker_pool.start_timers(TRAMA_HEARTBEAT_SECONDS=BEAT)
    execution = start_execution(store({"nap": sleep(3.0)}, "nap", name="nap-short"), {})[0]
    wait_final([execution.pk])

    count, seconds = _schedule(scrape_until(_claims_counted(2)))  # the start, then the wake-up

    execution.refresh_from_db()
    until = datetime.fromisoformat(execution.steps.get(node_id="nap").detail["until"])
    # Each claim waited at most from its due time to when the execution moved on: the start from its
    # creation to its first claim, the wake-up from the sleep's end to the end of the execution.
    # Measured from before the sleep (the enqueue that started it), the second alone would be 3 s.
    waited = (execution.started_at - execution.created_at) + (execution.finished_at - until)
    assert count == 2
    assert seconds <= waited.total_seconds() + CLOCK_SLACK_S, (seconds, waited)


@pytest.mark.workers
def test_schedule_to_start_counts_the_time_a_due_step_waited_for_the_timer_loop(worker_pool, beating):
    worker_pool.start_worker(TRAMA_HEARTBEAT_SECONDS=BEAT, TRAMA_WORKERS=1)
    worker_pool.start_timers(TRAMA_HEARTBEAT_SECONDS=BEAT)
    napping = start_execution(store({"nap": sleep(600)}, "nap", name="nap-long"), {})[0]
    scrape_until(lambda m: _is(Execution.objects.get(pk=napping.pk).status == "SLEEPING"))
    # As if its sleep had ended a minute ago while no timer loop ran: the loop enqueues it only now.
    Execution.objects.filter(pk=napping.pk).update(due_at=timezone.now() - timedelta(seconds=60), nudged_at=None)

    count, seconds = _schedule(scrape_until(_claims_counted(2)))

    assert count == 2
    assert seconds >= 60  # from when it was due, not from when the timer loop enqueued it
