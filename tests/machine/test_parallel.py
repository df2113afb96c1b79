"""The join of parallel branches in the pure state machine, and its compensation."""

from __future__ import annotations

import pytest

from executions.choices import Phase
from executions.machine import (
    BranchFinished,
    Cancel,
    CancelBranches,
    EventRejected,
    Fork,
    Resume,
    Retry,
    RetryBranches,
    branch_finished,
    branch_state,
)
from tests.support.machine import SVC, Run, comp
from tests.support.specs import chain, retry


def forked_run() -> Run:
    """a -> fork(b -> c | d) -> e, every task undoable; a has succeeded and the branches are running."""
    nodes = chain(SVC, "a", "b", "c", "d", "e")
    for node_id in "abcde":
        nodes[node_id]["compensation"] = comp(f"/{node_id}") | {"retry": retry(1)}
    nodes["a"]["next"], nodes["c"]["next"], nodes["d"]["next"] = "fork", None, None
    nodes["fork"] = {"type": "parallel", "branches": ["b", "d"], "next": "e"}
    run = Run(nodes, "a")
    run.start()
    d = run.ok()
    assert d.status == "WAITING" and [a for a in d.actions if isinstance(a, Fork)] == [Fork("fork", ["b", "d"])]
    return run


def compensation_order(run: Run) -> list[str]:
    order, d = [], run.send(Resume())
    while d.status == "COMPENSATING":
        assert d.call.phase == Phase.COMPENSATION
        order.append(d.call.node)
        d = run.ok()
    return order


def test_a_failed_branch_compensates_the_steps_of_the_branches_that_succeeded_then_those_before_the_fork():
    run = forked_run()
    run.send(BranchFinished("b", "SUCCEEDED", {}, ["b", "c"]))
    d = run.send(BranchFinished("d", "COMPENSATED", {}, []))
    assert d.status == "COMPENSATING"
    assert compensation_order(run) == ["c", "b", "a"]
    assert run.last.status == "COMPENSATED"
    assert run.last.state["error"]["branch"] == "d"


def test_a_branch_that_failed_for_good_ends_the_parent_failed_after_compensating_the_rest():
    run = forked_run()
    run.send(BranchFinished("d", "FAILED", {}, []))
    run.send(BranchFinished("b", "SUCCEEDED", {}, ["b", "c"]))
    assert compensation_order(run) == ["c", "b", "a"]
    assert run.last.status == "FAILED"
    assert run.last.state["error"]["message"] == "branch 'd' ended FAILED"


def test_a_cancel_during_the_join_also_compensates_the_branches_that_succeeded():
    run = forked_run()
    run.send(BranchFinished("b", "SUCCEEDED", {}, ["b", "c"]))
    run.send(Cancel(compensate=True))
    assert run.send(Resume()).call is None  # the join holds every compensation until the branches end
    d = run.send(BranchFinished("d", "CANCELLED", {}, []))
    assert d.status == "COMPENSATING"
    assert compensation_order(run) == ["c", "b", "a"]
    assert run.last.status == "CANCELLED"


def test_a_failure_after_the_join_compensates_the_branches_steps_in_reverse():
    run = forked_run()
    run.send(BranchFinished("d", "SUCCEEDED", {}, ["d"]))
    run.send(BranchFinished("b", "SUCCEEDED", {}, ["b", "c"]))
    d = run.send(Resume())
    assert d.call.node == "e"
    d = run.http_error(400)
    assert d.status == "COMPENSATING"
    order = [d.call.node]
    while (d := run.ok()).status == "COMPENSATING":
        order.append(d.call.node)
    assert order == ["d", "c", "b", "a"]
    assert run.last.status == "COMPENSATED"


# --- a branch that stops at a failed node (on_failure "fail"), and the parent's retry ------------------


def test_a_branch_stopped_at_a_failed_node_reports_stopped_with_its_new_answer_after_a_retry():
    nodes = chain(SVC, "a", "b")
    nodes["b"]["on_failure"] = "fail"
    nodes["a"]["next"], nodes["fork"] = "fork", {"type": "parallel", "branches": ["b"]}
    parent = Run(nodes, "a")
    parent.start()
    parent.ok()
    branch = Run(nodes, "b")
    branch.state = branch_state(parent.state, "b")
    branch.start()
    branch.http_error(500)
    assert branch.last.status == "FAILED"

    stopped = branch_finished("b", branch.state, parent.state)

    assert (stopped.status, stopped.stopped, stopped.results["b"]["response"]["status"]) == ("FAILED", True, 500)
    parent.send(stopped)
    branch.send(Retry())
    branch.send(Resume())
    branch.ok({"paid": True})
    again = branch_finished("b", branch.state, parent.state)
    assert (again.status, again.stopped) == ("SUCCEEDED", False)
    assert again.results["b"]["response"]["body"] == {"paid": True}  # the parent saw the 500: the new answer goes


def test_a_stopped_branch_lets_the_others_finish_then_the_parent_stops_failed_undoing_nothing():
    run = forked_run()
    d = run.send(BranchFinished("d", "FAILED", {}, [], stopped=True))
    assert d.status == "WAITING" and not [a for a in d.actions if isinstance(a, CancelBranches)]
    d = run.send(BranchFinished("b", "SUCCEEDED", {}, ["b", "c"]))
    assert (d.status, d.call) == ("FAILED", None)  # no compensation
    assert d.state["error"] == {"node": "fork", "branch": "d", "failure": "branch",
                                "message": "branch 'd' ended FAILED; a retry runs it again"}  # fmt: skip
    assert run.steps()[-1] == ("fork", Phase.FORWARD, 1, "failed")


def test_retry_of_a_parent_stopped_at_the_join_retries_the_stopped_branch_and_joins_again():
    run = forked_run()
    run.send(BranchFinished("d", "FAILED", {}, [], stopped=True))
    run.send(BranchFinished("b", "SUCCEEDED", {}, ["b", "c"]))

    d = run.send(Retry())

    assert d.status == "WAITING" and d.state["error"] is None
    assert [a for a in d.actions if isinstance(a, RetryBranches)] == [RetryBranches(["d"])]
    d = run.send(BranchFinished("d", "SUCCEEDED", {"d": {"response": {"status": 200}}}, ["d"]))
    assert d.status == "RUNNING"
    assert run.send(Resume()).call.node == "e"
    assert run.steps()[-2:] == [("fork", Phase.FORWARD, 1, "failed"), ("fork", Phase.FORWARD, 2, "succeeded")]
    # Both branches' steps are the parent's to undo after a later failure, each once.
    d = run.http_error(400)
    order = [d.call.node]
    while (d := run.ok()).status == "COMPENSATING":
        order.append(d.call.node)
    assert order == ["d", "c", "b", "a"]


def test_the_re_checks_after_a_retry_ask_for_the_unreported_branches_again_less_and_less_often():
    """The branch retries are carried out after the parent's retry commits: a crash in between leaves
    them stopped, so each re-check asks again (a branch already running refuses) until they report."""
    run = forked_run()
    run.send(BranchFinished("d", "FAILED", {}, [], stopped=True))
    run.send(BranchFinished("b", "SUCCEEDED", {}, ["b", "c"]))
    d = run.send(Retry())
    gaps = []
    for _ in range(9):
        gaps.append((d.due_at - run.now).total_seconds())
        run.now = d.due_at
        d = run.send(Resume())
        assert d.status == "WAITING"
        assert [a for a in d.actions if isinstance(a, RetryBranches)] == [RetryBranches(["d"])]
    assert gaps == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    d = run.send(BranchFinished("d", "SUCCEEDED", {}, ["d"]))
    assert d.status == "RUNNING"


def test_the_re_check_of_a_first_join_asks_for_nothing():
    run = forked_run()
    d = run.send(Resume())
    assert d.status == "WAITING" and d.actions == []
    assert (d.due_at - run.now).total_seconds() == 3600


def test_retry_with_skip_of_a_parent_stopped_at_the_join_is_rejected():
    run = forked_run()
    run.send(BranchFinished("d", "FAILED", {}, [], stopped=True))
    run.send(BranchFinished("b", "SUCCEEDED", {}, ["b", "c"]))
    with pytest.raises(EventRejected, match="skip applies to a failed compensation only"):
        run.send(Retry(skip=True))


def test_a_stopped_branch_and_a_compensated_one_compensate_everything_as_before():
    run = forked_run()
    run.send(BranchFinished("d", "FAILED", {}, [], stopped=True))
    d = run.send(BranchFinished("b", "COMPENSATED", {}, []))
    assert d.status == "COMPENSATING"
    assert compensation_order(run) == ["a"]
    assert run.last.status == "FAILED"  # the stopped branch still needs an operator


def test_retry_of_a_parent_whose_branch_failed_in_compensation_is_refused_naming_the_branch():
    run = forked_run()
    run.send(BranchFinished("d", "FAILED", {}, []))
    run.send(BranchFinished("b", "SUCCEEDED", {}, ["b", "c"]))
    compensation_order(run)
    assert run.last.status == "FAILED"
    for skip in (False, True):
        with pytest.raises(EventRejected, match="branch 'd' ended FAILED and everything else is already compensated"):
            run.send(Retry(skip=skip))
