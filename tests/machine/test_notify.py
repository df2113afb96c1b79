"""Outcome notifications in the pure state machine."""

from __future__ import annotations

from executions.machine import Resume
from tests.support.machine import SVC, Run, comp
from tests.support.specs import chain, req, retry


def _notifying(**notify) -> Run:
    run = Run(
        chain(SVC, "a", "b", b={"on_failure": "compensate"}, a={"compensation": comp("/a") | {"retry": retry(1)}}), "a"
    )
    run.spec["notify"] = {
        k: req("POST", f"http://hooks/{k}") | {"retry": retry(2, backoff_s=1, max_backoff_s=60.0)} for k in notify
    }
    return run


def test_success_sends_the_succeeded_notification_before_ending():
    run = _notifying(succeeded=True, failed=True)
    run.start()
    run.ok({"id": 1})
    d = run.ok({"done": True})
    assert d.status == "RUNNING"  # not final until the notification is settled
    assert (d.call.node, d.call.phase, d.call.request["url"]) == (
        "notify.succeeded",
        "notify",
        "http://hooks/succeeded",
    )
    d = run.ok()
    assert d.status == "SUCCEEDED"
    assert d.state["output"] == {"done": True}
    assert run.steps()[-1] == ("notify.succeeded", "notify", 1, "succeeded")


def test_compensated_execution_sends_the_failed_notification_with_retries():
    run = _notifying(failed=True)
    run.start()
    run.ok({"id": 1})
    run.http_error(400)  # b fails for good: compensate a
    assert run.ok().call.node == "notify.failed"
    d = run.http_error(503)
    assert d.status == "SLEEPING"  # back-off before the second attempt
    d = run.later(5).send(Resume())
    assert (d.call.node, d.call.attempt) == ("notify.failed", 2)
    d = run.http_error(503)  # retries exhausted: the outcome stands anyway
    assert d.status == "COMPENSATED"
    assert d.state["error"]["node"] == "b"
    assert [s for s in run.steps() if s[1] == "notify"] == [
        ("notify.failed", "notify", 1, "failed"),
        ("notify.failed", "notify", 2, "failed"),
    ]


def test_no_notification_for_an_outcome_without_a_request():
    run = _notifying(failed=True)
    run.start()
    run.ok()
    assert run.ok().status == "SUCCEEDED"
