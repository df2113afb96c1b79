"""Sleep nodes in the pure state machine: due times, early resumes, wake."""

from __future__ import annotations

from datetime import timedelta

import pytest

from executions.machine import EventRejected, Resume, Wake
from tests.support.machine import SVC, T0, Run, sleeping_run
from tests.support.specs import chain


def test_sleep_with_duration_pauses_sleeping_until_due():
    run = sleeping_run()
    d = run.last
    assert d.status == "SLEEPING"
    assert d.call is None
    assert d.due_at == T0 + timedelta(seconds=30)
    nap = run.history[2]
    assert (nap["node_id"], nap["status"]) == ("nap", "sleeping")
    assert nap["detail"] == {"until": (T0 + timedelta(seconds=30)).isoformat()}


def test_resume_before_the_sleep_is_due_keeps_sleeping():
    run = sleeping_run()
    d = run.later(10).send(Resume())
    assert d.status == "SLEEPING"
    assert d.due_at == T0 + timedelta(seconds=30)
    assert d.actions == []


def test_resume_after_the_sleep_is_due_goes_on_to_the_next_node():
    run = sleeping_run()
    d = run.later(30).send(Resume())
    assert d.status == "RUNNING"
    assert d.call.node == "b"
    assert run.history[2]["status"] == "succeeded"
    assert run.history[2]["finished_at"] == (T0 + timedelta(seconds=30)).isoformat()


def test_wake_ends_a_sleep_early():
    run = sleeping_run()
    d = run.later(5).send(Wake())
    assert d.due_at == T0 + timedelta(seconds=5)
    d = run.send(Resume())
    assert d.call.node == "b"
    assert run.history[2]["status"] == "succeeded"


def test_wake_is_rejected_unless_sleeping():
    run = Run(chain(SVC, "a"), "a")
    run.start()
    with pytest.raises(EventRejected):
        run.send(Wake())
