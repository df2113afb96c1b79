"""Cancels in the pure state machine: pending, sleeping, waiting."""

from __future__ import annotations

import pytest

from executions.choices import Phase
from executions.machine import CallbackArrived, Cancel, EventRejected, Resume
from tests.support.machine import SVC, T0, Run, sleeping_run, waiting_run
from tests.support.specs import chain


@pytest.mark.parametrize("compensate", [True, False])
def test_cancel_of_a_pending_execution_ends_cancelled_without_calls(compensate):
    run = Run(chain(SVC, "a"), "a")
    d = run.send(Cancel(compensate=compensate))
    if compensate:
        assert d.status == "COMPENSATING" and d.due_at == T0
        d = run.send(Resume())
    assert d.status == "CANCELLED"
    assert d.call is None
    assert run.history == {}


def test_cancel_while_sleeping_with_compensation_compensates_then_ends_cancelled():
    run = sleeping_run()
    d = run.later(1).send(Cancel(compensate=True))
    assert d.status == "COMPENSATING"
    assert d.due_at == run.now  # runnable now; the worker does the calls
    assert d.call is None
    assert run.history[2]["status"] == "cancelled"
    d = run.send(Resume())
    assert (d.call.node, d.call.phase) == ("a", Phase.COMPENSATION)
    d = run.ok()
    assert d.status == "CANCELLED"
    assert d.state["sleep"] is None


def test_cancel_while_sleeping_without_compensation_ends_cancelled_at_once():
    run = sleeping_run()
    d = run.send(Cancel(compensate=False))
    assert d.status == "CANCELLED"
    assert d.call is None and d.due_at is None
    assert run.history[2]["status"] == "cancelled"
    assert all(s[1] == Phase.FORWARD for s in run.steps())


@pytest.mark.parametrize("compensate", [True, False])
def test_cancel_while_waiting(compensate):
    run = waiting_run()
    d = run.later(1).send(Cancel(compensate=compensate))
    assert run.history[2]["status"] == "cancelled"
    if compensate:
        assert d.status == "COMPENSATING"
        d = run.send(Resume())
        assert (d.call.node, d.call.phase) == ("a", Phase.COMPENSATION)
        d = run.ok()
    assert d.status == "CANCELLED"
    with pytest.raises(EventRejected):
        run.send(CallbackArrived("pix", 1, "succeeded", {}))
