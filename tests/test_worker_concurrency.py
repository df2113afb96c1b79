"""Many executions in flight per worker process (executions/inflight.py), under real processes.

The service holds every request at a gate until the test opens it, so "in
flight at once" is observed, not inferred from timings.
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connection

from executions.inflight import InFlight
from executions.models import Execution
from executions.services import start_execution
from tests.support import Reply, wait_until
from tests.support.definitions import store
from tests.support.engine import idempotency_keys
from tests.support.specs import chain

pytestmark = [pytest.mark.workers, pytest.mark.django_db(transaction=True)]


class Gate:
    """A reply body that holds each request until ``open()``; counts the requests held."""

    def __init__(self):
        self._open = threading.Event()
        self._lock = threading.Lock()
        self.held = 0

    def __call__(self, recorded) -> dict:
        with self._lock:
            self.held += 1
        self._open.wait(timeout=120)
        return {"ok": True, "id": recorded.path}

    def open(self) -> None:
        self._open.set()


def statuses(ids) -> Counter:
    return Counter(Execution.objects.filter(pk__in=ids).values_list("status", flat=True))


def test_one_worker_process_waits_on_many_services_at_once(service, worker_pool):
    gate = Gate()
    service.default("POST", "/b", Reply(200, gate))
    definition = store(chain(service.url, "a", "b", "c"), "a", name="inflight")
    worker_pool.start_worker(TRAMA_WORKERS=1, TRAMA_WORKER_CONCURRENCY=25)
    worker_pool.start_timers()

    ids = [start_execution(definition, {"n": n})[0].pk for n in range(25)]
    # One process, 25 calls to /b held open at the same time.
    wait_until(lambda: gate.held == 25, timeout=60, message="25 calls in flight from one worker process")
    gate.open()
    wait_until(lambda: statuses(ids)["SUCCEEDED"] == 25, timeout=60, message="all 25 SUCCEEDED")

    assert [k for k, n in Counter(idempotency_keys(service.requests)).items() if n > 1] == []
    assert len(service.requests) == 75


def test_a_full_process_takes_no_more_executions_than_it_can_hold(service, transactional_db, settings):
    """Back-pressure: with every slot busy, ``submit`` blocks (so django-q gives the task to another process)."""
    settings.TRAMA_EGRESS_ALLOW = ["127.0.0.1"]  # the calls run in this process's threads
    gate = Gate()
    service.default("POST", "/a", Reply(200, gate))
    definition = store(chain(service.url, "a"), "a", name="backpressure")
    ids = [str(start_execution(definition, {"n": n})[0].pk) for n in range(3)]
    pool = InFlight(2)
    pool.submit(ids[0])
    pool.submit(ids[1])
    wait_until(lambda: gate.held == 2, timeout=30, message="two executions in flight")

    third = threading.Thread(target=pool.submit, args=(ids[2],))
    third.start()
    third.join(timeout=1.0)
    assert third.is_alive(), "a third execution was taken while both slots were busy"
    assert pool.running == 2

    gate.open()
    third.join(timeout=30)
    assert not third.is_alive()
    wait_until(lambda: statuses(ids)["SUCCEEDED"] == 3, timeout=30, message="all three SUCCEEDED")
    assert gate.held == 3
    connection.close()


def test_killed_process_with_many_calls_in_flight_loses_none(service, worker_pool):
    lease = {"TRAMA_LEASE_SECONDS": 2}
    gate = Gate()
    service.script("POST", "/b", *[Reply(200, gate) for _ in range(20)])  # the doomed worker's calls hang
    nodes = chain(service.url, "a", "b", "c")
    nodes["b"]["request"]["timeout_s"] = 3.0
    definition = store(nodes, "a", name="killed")
    doomed = worker_pool.start_worker(TRAMA_WORKERS=1, TRAMA_WORKER_CONCURRENCY=20, **lease)

    ids = [start_execution(definition, {"n": n})[0].pk for n in range(20)]
    wait_until(lambda: gate.held == 20, timeout=60, message="20 calls in flight")
    worker_pool.kill(doomed)  # SIGKILL the whole process group with 20 calls in flight
    assert statuses(ids) == Counter({"RUNNING": 20})

    worker_pool.start_worker(TRAMA_WORKERS=2, **lease)
    worker_pool.start_timers(**lease)
    wait_until(lambda: statuses(ids)["SUCCEEDED"] == 20, timeout=90, message="all 20 SUCCEEDED on other workers")
    gate.open()

    duplicated = {k: n for k, n in Counter(idempotency_keys(service.requests)).items() if n > 1}
    # Only the calls in flight when the process died went out again, each once, with the same key.
    assert duplicated == {f"{pk}:b:1": 2 for pk in ids}
    for pk in ids:
        mine = [r.path for r in service.requests if r.header("Idempotency-Key").startswith(f"{pk}:")]
        assert mine == ["/a", "/b", "/b", "/c"]
