"""An operator's retry of a FAILED execution, and final states that reject every other event."""

from __future__ import annotations

import pytest

from executions.choices import Phase
from executions.machine import (
    AsyncAccepted,
    CallbackArrived,
    CallFailed,
    CallSucceeded,
    Cancel,
    EventRejected,
    Heartbeat,
    Resume,
    Retry,
    Wake,
)
from tests.support.machine import SVC, Run, failed_compensation_run, response
from tests.support.specs import chain


def test_retry_of_a_failed_forward_node_calls_it_again_with_the_next_attempt():
    run = Run(chain(SVC, "a", "b", "c", b={"on_failure": "fail"}), "a")
    run.start()
    run.ok()
    assert run.http_error(400).status == "FAILED"
    d = run.later(60).send(Retry())
    assert d.status == "RUNNING"
    assert d.due_at == run.now
    assert d.state["error"] is None
    d = run.send(Resume())
    assert (d.call.node, d.call.phase, d.call.attempt) == ("b", Phase.FORWARD, 2)
    run.ok()
    d = run.ok({"end": 1})
    assert d.status == "SUCCEEDED"
    assert [s[0] for s in run.steps()] == ["a", "b", "b", "c"]


def test_retry_of_a_failed_compensation_calls_it_again():
    run = failed_compensation_run()
    d = run.send(Retry())
    assert d.status == "COMPENSATING"
    d = run.send(Resume())
    assert (d.call.node, d.call.phase, d.call.attempt) == ("c", Phase.COMPENSATION, 3)
    d = run.ok()
    assert (d.call.node, d.call.phase, d.call.attempt) == ("a", Phase.COMPENSATION, 1)
    d = run.ok()
    assert d.status == "COMPENSATED"


def test_retry_with_skip_skips_the_failed_compensation():
    run = failed_compensation_run()
    d = run.send(Retry(skip=True))
    assert d.status == "COMPENSATING"
    d = run.send(Resume())
    assert (d.call.node, d.call.phase, d.call.attempt) == ("a", Phase.COMPENSATION, 1)
    d = run.ok()
    assert d.status == "COMPENSATED"
    assert [s[0] for s in run.steps() if s[1] == Phase.COMPENSATION] == ["d", "c", "c", "a"]


def test_retry_with_skip_is_rejected_for_a_failed_forward_node():
    run = Run(chain(SVC, "a", a={"on_failure": "fail"}), "a")
    run.start()
    run.http_error(400)
    with pytest.raises(EventRejected):
        run.send(Retry(skip=True))


def test_retry_is_rejected_unless_failed():
    run = Run(chain(SVC, "a"), "a")
    run.start()
    with pytest.raises(EventRejected):
        run.send(Retry())


def finished(status: str) -> Run:
    run = Run(chain(SVC, "a", a={"on_failure": "fail"}), "a")
    run.start()
    if status == "SUCCEEDED":
        run.ok()
    elif status == "FAILED":
        run.http_error(400)
    elif status == "COMPENSATED":
        run.spec["nodes"]["a"]["on_failure"] = "compensate"
        run.http_error(400)
    elif status == "CANCELLED":
        run.send(Cancel(compensate=False))
    assert run.state["status"] == status
    return run


ALL_EVENTS = [
    Resume(),
    CallSucceeded(1, response()),
    CallFailed(1, "network", "x"),
    AsyncAccepted(1, response()),
    CallbackArrived("a", 1, "succeeded", {}),
    Heartbeat("a", 1),
    Cancel(compensate=True),
    Cancel(compensate=False),
    Wake(),
    Retry(),
    Retry(skip=True),
]


@pytest.mark.parametrize("status", ["SUCCEEDED", "COMPENSATED", "FAILED", "CANCELLED"])
@pytest.mark.parametrize("event", ALL_EVENTS, ids=lambda e: type(e).__name__)
def test_final_states_reject_every_event_but_retry_of_failed(status, event):
    run = finished(status)
    if status == "FAILED" and event == Retry():
        assert run.send(event).status == "RUNNING"
        return
    with pytest.raises(EventRejected):
        run.send(event)
