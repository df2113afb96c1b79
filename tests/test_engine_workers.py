"""The engine under real worker processes: ``manage.py qcluster`` and ``manage.py trama_timers``.

The test process only starts executions (``start_execution`` enqueues on commit)
and watches the database and the TestService; the workers do every call.
"""

from __future__ import annotations

from collections import Counter

import pytest
from django.db.models.functions import Now

from executions.models import Execution
from executions.services import start_execution
from tests.support import Reply, wait_until
from tests.support.definitions import store
from tests.support.engine import history, idempotency_keys
from tests.support.specs import chain, req, sleep, task

pytestmark = [pytest.mark.workers, pytest.mark.django_db(transaction=True)]


def statuses(ids) -> Counter:
    return Counter(Execution.objects.filter(pk__in=ids).values_list("status", flat=True))


def wait_final(ids, timeout: float) -> None:
    wait_until(
        lambda: statuses(ids)["SUCCEEDED"] == len(ids),
        timeout=timeout,
        interval=0.1,
        message=f"all {len(ids)} executions SUCCEEDED",
    )


def test_two_workers_run_thirty_executions_and_never_the_same_step_twice(service, worker_pool):
    worker_pool.start_worker()
    worker_pool.start_worker()
    worker_pool.start_timers()
    definition = store(chain(service.url, "a", "b", "c"), "a", name="chain3")

    ids = [start_execution(definition, {"n": n})[0].pk for n in range(30)]
    wait_final(ids, timeout=40)

    assert len(service.requests) == 90
    keys = idempotency_keys(service.requests)
    assert [k for k, n in Counter(keys).items() if n > 1] == []
    for execution_id in ids:
        mine = [r for r in service.requests if r.header("Idempotency-Key").startswith(f"{execution_id}:")]
        assert [r.path for r in mine] == ["/a", "/b", "/c"]
        assert idempotency_keys(mine) == [f"{execution_id}:{node}:1" for node in "abc"]
    for execution in Execution.objects.filter(pk__in=ids):
        assert history(execution) == [(node, "forward", 1, "succeeded") for node in "abc"]
        assert execution.lease_until is None and execution.due_at is None


def test_killed_worker_loses_no_execution_another_worker_finishes_it(service, worker_pool):
    lease = {"TRAMA_LEASE_SECONDS": 3}
    worker_pool.start_timers(**lease)
    doomed = worker_pool.start_worker(**lease)
    service.script("POST", "/b", Reply(200, {"slow": True}, delay_s=3))
    nodes = chain(service.url, "a", "b", "c")
    nodes["b"]["request"]["timeout_s"] = 4.0
    execution, _ = start_execution(store(nodes, "a"), {})

    service.wait_for_calls(1, path="/b", timeout=20)
    worker_pool.kill(doomed)  # SIGKILL to the whole process group while /b is in flight
    execution.refresh_from_db()
    assert execution.status == "RUNNING"
    assert history(execution) == [("a", "forward", 1, "succeeded")]

    worker_pool.start_worker(**lease)
    # The dead worker's lease covers its call's timeout plus a margin; then the timers hand it on.
    wait_final([execution.pk], timeout=60)

    execution.refresh_from_db()
    assert execution.output == {"ok": True, "path": "/c", "echo": None}
    assert [r.path for r in service.requests] == ["/a", "/b", "/b", "/c"]
    duplicated = {k: n for k, n in Counter(idempotency_keys(service.requests)).items() if n > 1}
    assert duplicated == {f"{execution.pk}:b:1": 2}  # only the call that was in flight went out again
    assert [s[0] for s in history(execution) if s[3] == "succeeded"] == ["a", "b", "c"]


def test_sleep_is_ended_by_the_timer_process(service, worker_pool):
    worker_pool.start_worker()
    nodes = {"a": task(req("POST", service.url + "/a"), next="nap"), "nap": sleep(1.0, next="b")}
    nodes["b"] = task(req("POST", service.url + "/b"))
    execution, _ = start_execution(store(nodes, "a"), {})

    wait_until(lambda: Execution.objects.get(pk=execution.pk).status == "SLEEPING", timeout=20)
    wait_until(lambda: Execution.objects.filter(pk=execution.pk, due_at__lt=Now()).exists(), timeout=20)
    # Past its due time but nothing enqueues it without the timer loop.
    assert Execution.objects.get(pk=execution.pk).status == "SLEEPING"
    assert [r.path for r in service.requests] == ["/a"]

    worker_pool.start_timers()
    wait_final([execution.pk], timeout=20)
    a, b = service.requests
    assert (a.path, b.path) == ("/a", "/b")
    assert b.at - a.at >= 1.0
    execution.refresh_from_db()
    assert history(execution) == [
        ("a", "forward", 1, "succeeded"),
        ("nap", "forward", 1, "succeeded"),
        ("b", "forward", 1, "succeeded"),
    ]


def test_a_slow_first_call_is_not_sent_again_while_in_flight(service, worker_pool):
    lease = {"TRAMA_LEASE_SECONDS": 1.5}
    worker_pool.start_worker(**lease)
    worker_pool.start_timers(**lease)
    service.script("POST", "/a", Reply(200, {"slow": True}, delay_s=4))
    definition = store({"a": task(req("POST", service.url + "/a", timeout_s=10.0))}, "a")
    execution, _ = start_execution(definition, {})

    wait_final([execution.pk], timeout=30)
    assert idempotency_keys(service.requests) == [f"{execution.pk}:a:1"]
