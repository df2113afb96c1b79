"""Retries of a failing node in the pure state machine: retry_on classes and back-off."""

from __future__ import annotations

import pytest

from executions.choices import Phase
from executions.machine import Resume, backoff_seconds
from tests.support.machine import SVC, T0, Run, comp
from tests.support.specs import chain, retry


def test_retryable_failure_with_attempts_left_backs_off_then_calls_attempt_two():
    policy = retry(max_attempts=3, backoff_s=2.0, multiplier=2.0, max_backoff_s=60.0)
    run = Run(chain(SVC, "a", "b", b={"retry": policy}), "a")
    run.start()
    run.ok()
    d = run.http_error(503)
    assert d.status == "SLEEPING"
    assert d.call is None
    first_delay = (d.due_at - T0).total_seconds()
    assert 2.0 * 0.8 <= first_delay <= 2.0 * 1.2
    assert run.history[2]["status"] == "failed" and run.history[2]["attempt"] == 1
    assert run.history[2]["error"]["failure"] == "status"

    # a resume before the back-off is over does nothing
    assert run.later(first_delay / 2).send(Resume()).status == "SLEEPING"
    run.now = d.due_at
    d = run.send(Resume())
    assert d.status == "RUNNING"
    assert (d.call.node, d.call.attempt, d.call.seq) == ("b", 2, 3)

    d = run.broken("timeout")
    second_delay = (d.due_at - run.now).total_seconds()
    assert 4.0 * 0.8 <= second_delay <= 4.0 * 1.2
    run.now = d.due_at
    assert run.send(Resume()).call.attempt == 3
    d = run.ok({"done": 1})
    assert d.status == "SUCCEEDED"
    assert [s[2:] for s in run.steps()] == [(1, "succeeded"), (1, "failed"), (2, "failed"), (3, "succeeded")]


def test_non_retryable_4xx_fails_at_once_and_compensates():
    run = Run(chain(SVC, "a", "b", a={"compensation": comp("/a") | {"retry": retry(1)}}, b={"retry": retry(5)}), "a")
    run.start()
    run.ok()
    d = run.http_error(400, {"why": "bad"})
    assert d.status == "COMPENSATING"
    assert (d.call.node, d.call.phase) == ("a", Phase.COMPENSATION)
    assert d.state["failure"]["node"] == "b" and d.state["failure"]["attempt"] == 1
    assert d.state["results"]["b"]["response"]["body"] == {"why": "bad"}


def test_retries_exhausted_fail_the_node():
    run = Run(chain(SVC, "a", a={"retry": retry(2), "on_failure": "fail"}), "a")
    run.start()
    run.http_error(500)
    run.now = run.last.due_at
    run.send(Resume())
    d = run.http_error(500)
    assert d.status == "FAILED"
    assert d.state["error"]["attempt"] == 2
    assert run.steps() == [("a", Phase.FORWARD, 1, "failed"), ("a", Phase.FORWARD, 2, "failed")]


@pytest.mark.parametrize(
    ("retry_on", "failure", "status", "retried"),
    [
        (None, "network", None, True),
        (None, "timeout", None, True),
        (None, "status", 408, True),
        (None, "status", 429, True),
        (None, "status", 500, True),
        (None, "status", 503, True),
        (None, "status", 400, False),
        (None, "status", 404, False),
        (None, "status", 409, False),
        ([404], "status", 404, True),
        ([404], "status", 500, False),
        ([404], "network", None, False),
        (["4xx"], "status", 400, True),
        (["4xx"], "status", 422, True),
        (["4xx"], "status", 500, False),
        (["5xx"], "timeout", None, False),
        (["timeout"], "timeout", None, True),
        ([], "network", None, False),
        (["network", "timeout", "4xx", "5xx"], "template", None, False),
        (["network", "timeout", "4xx", "5xx"], "egress", None, False),
    ],
)
def test_retry_on_classes(retry_on, failure, status, retried):
    policy = retry(3) if retry_on is None else retry(3, retry_on=retry_on)
    run = Run(chain(SVC, "a", a={"retry": policy, "on_failure": "fail"}), "a")
    run.start()
    d = run.http_error(status) if status is not None else run.broken(failure)
    assert d.status == ("SLEEPING" if retried else "FAILED")


def test_backoff_grows_by_the_multiplier_with_bounded_jitter():
    policy = retry(backoff_s=1.0, multiplier=3.0, max_backoff_s=1000.0)
    for key in ("k1", "k2", "k3", "k4"):
        for attempt in range(1, 6):
            base = 1.0 * 3.0 ** (attempt - 1)
            assert base * 0.8 <= backoff_seconds(policy, attempt, key) <= base * 1.2


def test_backoff_jitter_is_deterministic_per_key_and_varies_across_keys():
    policy = retry(backoff_s=10.0, max_backoff_s=60.0)
    assert backoff_seconds(policy, 2, "x") == backoff_seconds(policy, 2, "x")
    values = {backoff_seconds(policy, 1, f"key-{i}") for i in range(20)}
    assert len(values) > 10
    assert min(values) >= 8.0 and max(values) <= 12.0


def test_backoff_base_is_capped_by_max_backoff():
    policy = retry(backoff_s=1.0, multiplier=2.0, max_backoff_s=5.0)
    for key in ("a", "b", "c"):
        for attempt in (4, 10, 30):
            assert backoff_seconds(policy, attempt, key) <= 5.0 * 1.2


def test_backoff_never_exceeds_max_backoff():
    policy = retry(backoff_s=1.0, multiplier=2.0, max_backoff_s=5.0)
    delays = [backoff_seconds(policy, 10, f"key-{i}") for i in range(50)]
    assert max(delays) <= 5.0
