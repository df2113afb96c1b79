"""The join of parallel branches in the pure state machine, and its compensation."""

from __future__ import annotations

from executions.choices import Phase
from executions.machine import BranchFinished, Cancel, Fork, Resume
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
