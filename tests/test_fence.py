"""The claim's fence and lease, in-process and fast: a worker that lost its claim writes and sends nothing.

(tests/test_chaos.py proves the same under real processes and faults, slowly.)
"""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from executions.models import Execution
from executions.services import worker
from executions.services.worker import advance_execution, claim_execution
from tests.support.definitions import store
from tests.support.engine import history, idempotency_keys
from tests.support.specs import chain

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def loopback(settings):
    settings.TRAMA_EGRESS_ALLOW = ["127.0.0.1"]


def lapse_lease(execution_id) -> None:
    """What the database sees once a claim's lease has passed: the execution is due again."""
    past = timezone.now() - timedelta(seconds=1)
    Execution.objects.filter(pk=execution_id).update(lease_until=past, due_at=past)


def test_the_write_of_a_worker_whose_claim_was_taken_over_is_refused(service):
    from executions.services import start_execution

    execution, _ = start_execution(store(chain(service.url, "a", "b"), "a"), {})
    stale = claim_execution(execution.pk)
    lapse_lease(execution.pk)
    successor = claim_execution(execution.pk)
    assert (stale.fence, successor.fence) == (1, 2)

    # The first holder still believes in its lease: it calls /a, then its write must miss.
    worker._Run(stale, time.monotonic()).run()
    assert [r.path for r in service.requests] == ["/a"]
    execution.refresh_from_db()
    assert (execution.fence, execution.status, history(execution)) == (2, "RUNNING", [])

    worker._Run(successor, time.monotonic()).run()
    execution.refresh_from_db()
    assert execution.status == "SUCCEEDED"
    assert history(execution) == [("a", "forward", 1, "succeeded"), ("b", "forward", 1, "succeeded")]
    assert idempotency_keys(service.requests) == [f"{execution.pk}:{n}:1" for n in ("a", "a", "b")]


def test_a_call_is_not_sent_once_the_lease_it_was_committed_under_has_passed(service, monkeypatch, settings):
    """A worker paused (SIGSTOP) between committing the lease for its next call and sending it."""
    from executions.services import start_execution

    settings.TRAMA_LEASE_SECONDS = 1.0
    execution, _ = start_execution(store(chain(service.url, "a", "b"), "a"), {})
    clock = PausingClock()
    monkeypatch.setattr(worker, "time", clock)  # the worker's clock only

    def pause_after_committing_the_lease_for_b(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if service.requests and re.search(r'UPDATE "?executions_execution"?', sql):
            clock.pause(seconds=60)  # the process sleeps right after this commit
        return result

    with connection.execute_wrapper(pause_after_committing_the_lease_for_b):
        advance_execution(execution.pk)

    assert [r.path for r in service.requests] == ["/a"]  # /b was dropped, not sent late
    execution.refresh_from_db()
    assert execution.status == "RUNNING"
    assert history(execution) == [("a", "forward", 1, "succeeded")]

    monkeypatch.undo()
    lapse_lease(execution.pk)
    advance_execution(execution.pk)  # the successor sends /b, once, under the same key
    execution.refresh_from_db()
    assert execution.status == "SUCCEEDED"
    assert idempotency_keys(service.requests) == [f"{execution.pk}:a:1", f"{execution.pk}:b:1"]


class PausingClock:
    """The ``time`` module as the worker sees it, with a monotonic clock that jumps ahead as it
    does for a process resumed after SIGSTOP."""

    sleep = staticmethod(time.sleep)

    def __init__(self):
        self._real = time.monotonic
        self._offset = 0.0

    def monotonic(self) -> float:
        return self._real() + self._offset

    def pause(self, seconds: float) -> None:
        self._offset += seconds
