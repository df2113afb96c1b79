"""Async tasks in the pure state machine: waits, callbacks, heartbeats, timeouts, resends."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from executions.choices import Phase
from executions.machine import AsyncAccepted, CallbackArrived, Cancel, EventRejected, Heartbeat, Resume, SendAsync
from tests.support.machine import T0, Run, async_graph, comp, response, waiting_run
from tests.support.specs import req, retry, task

# --- Async tasks ------------------------------------------------------------------------------------


def test_async_task_sends_and_waits_with_a_deadline():
    run = Run(async_graph(timeout_s=900), "a")
    run.start()
    d = run.ok({"id": 1})
    assert d.status == "WAITING"
    assert isinstance(d.call, SendAsync)
    assert (d.call.node, d.call.attempt) == ("pix", 1)
    assert d.call.deadline == T0 + timedelta(seconds=900)
    assert d.state["wait"]["deadline"] == (T0 + timedelta(seconds=900)).isoformat()
    assert d.state["wait"]["acked"] is False
    # the wait is in the history while it lasts
    assert run.history[2]["status"] == "waiting" and run.history[2]["node_type"] == "async_task"


def test_async_accepted_marks_the_wait_acknowledged_and_due_at_the_deadline():
    run = waiting_run(timeout_s=900)
    d = run.last
    assert d.status == "WAITING"
    assert d.state["wait"]["acked"] is True
    assert d.due_at == T0 + timedelta(seconds=900)
    assert run.history[2]["status"] == "waiting"
    assert run.history[2]["response_status"] == 202


def test_callback_succeeded_continues_with_the_callback_body_available():
    run = waiting_run()
    d = run.later(3).send(CallbackArrived("pix", 1, "succeeded", {"paid": True}))
    assert d.status == "RUNNING"
    assert d.due_at == run.now  # the worker takes it from here
    assert run.history[2]["status"] == "succeeded"
    assert run.history[2]["detail"]["callback"] == {"paid": True}
    assert d.state["results"]["pix"]["callback"]["body"] == {"paid": True}
    d = run.send(Resume())
    assert d.call.node == "ship"


def test_callback_on_the_last_node_ends_succeeded_with_the_callback_body_as_output():
    nodes = async_graph()
    nodes["pix"]["next"] = None
    run = Run(nodes, "a")
    run.start()
    run.ok()
    run.accepted()
    d = run.send(CallbackArrived("pix", 1, "succeeded", {"paid": True}))
    assert d.status == "SUCCEEDED"
    assert d.state["output"] == {"paid": True}


def test_callback_failed_fails_the_node_and_compensates():
    run = waiting_run()
    d = run.send(CallbackArrived("pix", 1, "failed", {"reason": "declined"}))
    assert run.history[2]["status"] == "failed"
    assert d.status == "COMPENSATING"
    d = run.send(Resume())
    assert (d.call.node, d.call.phase) == ("a", Phase.COMPENSATION)
    d = run.ok()
    assert d.status == "COMPENSATED"
    assert d.state["error"]["node"] == "pix"


@pytest.mark.parametrize(
    ("reported", "message"),
    [
        ("card declined", "callback reported failure: card declined"),
        ({"code": 51, "message": "insufficient funds"}, "callback reported failure: insufficient funds"),
        ({"code": 51}, 'callback reported failure: {"code": 51}'),
        ("x" * 600, "callback reported failure: " + "x" * 497 + "..."),
    ],
    ids=["text", "object-with-message", "object", "long"],
)
def test_a_failed_callbacks_error_is_kept_in_the_step_and_the_execution_error(reported, message):
    run = waiting_run()
    run.send(CallbackArrived("pix", 1, "failed", {"status": "failed", "error": reported}))
    assert run.history[2]["error"] == {"message": message, "error": reported}
    run.send(Resume())
    d = run.ok()
    assert d.status == "COMPENSATED"
    assert d.state["error"] == {"node": "pix", "attempt": 1, "failure": "callback", "message": message,
                                "error": reported}  # fmt: skip


def test_callback_failed_with_attempts_left_backs_off_and_sends_again():
    run = waiting_run(retry=retry(2, backoff_s=2.0, max_backoff_s=60.0))
    d = run.send(CallbackArrived("pix", 1, "failed", {"reason": "declined"}))
    assert d.status == "SLEEPING"
    run.now = d.due_at
    d = run.send(Resume())
    assert isinstance(d.call, SendAsync)
    assert (d.call.node, d.call.attempt) == ("pix", 2)


def test_callback_arriving_before_the_acknowledgement_is_not_lost():
    run = Run(async_graph(), "a")
    run.start()
    sent = run.ok().call
    d = run.send(CallbackArrived("pix", 1, "succeeded", {"fast": True}))
    assert d.status == "RUNNING"
    # the late answer to the request no longer applies
    with pytest.raises(EventRejected):
        run.send(AsyncAccepted(sent.seq, response(None, 202)))
    assert run.send(Resume()).call.node == "ship"


@pytest.mark.parametrize(("node", "attempt"), [("pix", 2), ("pix", 0), ("a", 1), ("ship", 1)])
def test_callback_for_another_node_or_attempt_is_rejected(node, attempt):
    run = waiting_run()
    with pytest.raises(EventRejected):
        run.send(CallbackArrived(node, attempt, "succeeded", {}))
    with pytest.raises(EventRejected):
        run.send(Heartbeat(node, attempt))
    assert run.state["status"] == "WAITING"


def test_heartbeat_pushes_the_deadline_out_by_heartbeat_s():
    run = waiting_run(timeout_s=60, heartbeat_s=100)
    d = run.later(50).send(Heartbeat("pix", 1))
    assert d.status == "WAITING"
    assert d.due_at == T0 + timedelta(seconds=150)
    assert d.state["wait"]["deadline"] == (T0 + timedelta(seconds=150)).isoformat()
    # the old deadline passed: still waiting
    assert run.later(20).send(Resume()).status == "WAITING"


def test_heartbeat_never_shortens_the_deadline():
    run = waiting_run(timeout_s=600, heartbeat_s=10)
    d = run.later(1).send(Heartbeat("pix", 1))
    assert d.due_at == T0 + timedelta(seconds=600)


def test_wait_past_its_deadline_times_out_and_compensates():
    run = waiting_run(timeout_s=60)
    assert run.later(59).send(Resume()).status == "WAITING"
    d = run.later(1).send(Resume())
    assert run.history[2]["status"] == "timed_out"
    assert d.status == "COMPENSATING"
    assert (d.call.node, d.call.phase) == ("a", Phase.COMPENSATION)
    assert d.state["failure"]["failure"] == "timeout"
    with pytest.raises(EventRejected):
        run.send(CallbackArrived("pix", 1, "succeeded", {}))


def test_wait_timeout_with_on_timeout_fail_ends_failed():
    run = waiting_run(timeout_s=60, on_timeout="fail")
    d = run.later(61).send(Resume())
    assert d.status == "FAILED"
    assert d.call is None
    assert d.state["error"]["failure"] == "timeout"


def test_wait_timeout_with_on_timeout_node_branches_there():
    nodes = async_graph(timeout_s=60, on_timeout="late")
    nodes["late"] = task(req("POST", "http://svc/late"))
    run = Run(nodes, "a")
    run.start()
    run.ok()
    run.accepted()
    d = run.later(60).send(Resume())
    assert d.status == "RUNNING"
    assert d.call.node == "late"


def test_unacknowledged_wait_is_sent_again_after_resend_at_with_the_same_attempt():
    run = Run(async_graph(timeout_s=3600), "a")
    run.start()
    first = run.ok().call
    resend_at = datetime.fromisoformat(run.state["wait"]["resend_at"])
    assert resend_at > T0
    # before resend_at: keep waiting for the sender's answer
    run.now = resend_at - timedelta(seconds=1)
    d = run.send(Resume())
    assert d.status == "WAITING" and d.call is None and d.due_at == resend_at
    run.now = resend_at
    d = run.send(Resume())
    assert isinstance(d.call, SendAsync)
    assert (d.call.node, d.call.attempt, d.call.seq) == ("pix", first.attempt, first.seq)
    assert d.call.deadline == first.deadline
    assert d.steps == []  # same step, not a new one
    assert run.accepted().state["wait"]["acked"] is True


def test_unacknowledged_wait_past_its_deadline_times_out_instead_of_sending_again():
    run = Run(async_graph(timeout_s=5), "a")
    run.start()
    run.ok()
    d = run.send(Resume())
    assert d.due_at <= T0 + timedelta(seconds=5)
    d = run.later(60).send(Resume())
    assert not isinstance(d.call, SendAsync)
    assert run.history[2]["status"] == "timed_out"


# --- Abandoned waits --------------------------------------------------------------------------------


def _accepted_pix_with_compensation(**extra) -> Run:
    run = Run(async_graph(**extra), "a")
    run.spec["nodes"]["pix"]["compensation"] = comp("/pix") | {"retry": retry(1)}
    run.start()
    run.ok({"id": 1})
    run.accepted({"queued": True})
    return run


def test_cancel_of_an_accepted_wait_compensates_that_node_first():
    run = _accepted_pix_with_compensation()
    run.later(1).send(Cancel(compensate=True))
    d = run.send(Resume())
    assert (d.call.node, d.call.phase) == ("pix", Phase.COMPENSATION)
    d = run.ok()
    assert (d.call.node, d.call.phase) == ("a", Phase.COMPENSATION)
    assert run.ok().status == "CANCELLED"


def test_timeout_of_an_accepted_wait_compensates_that_node_first():
    run = _accepted_pix_with_compensation(timeout_s=5)
    d = run.later(6).send(Resume())
    assert (d.call.node, d.call.phase) == ("pix", Phase.COMPENSATION)
    d = run.ok()
    assert (d.call.node, d.call.phase) == ("a", Phase.COMPENSATION)
    assert run.ok().status == "COMPENSATED"
