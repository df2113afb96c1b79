"""Questions the services ask about a stored state, answered here: its keys are the machine's business.

Each takes the state as stored on the execution row, which may predate a key (hence ``.get``).
"""

from __future__ import annotations

from datetime import datetime

from executions.choices import ExecutionStatus, Phase
from executions.machine.model import BranchFinished, State


def waits_for(state: State, node: str, attempt: int) -> bool:
    """The execution is WAITING at this attempt of this node (for its callback, or to resend its request)."""
    return (
        state.get("status") == ExecutionStatus.WAITING and state.get("node") == node and state.get("attempt") == attempt
    )


def answer_pending(state: State) -> bool:
    """The current async request's answer has not been seen: it is being sent, or its sender died."""
    wait = state.get("wait")
    return not (wait and wait["acked"])


def wait_deadline(state: State) -> datetime | None:
    """When the current wait for a callback times out (heartbeats push it), or None when nothing waits."""
    wait = state.get("wait")
    return datetime.fromisoformat(wait["deadline"]) if wait else None


def branch_finished(branch: str, state: State, parent: State) -> BranchFinished:
    """What a branch that ended (``state`` final) tells its parent: its outcome, the results the parent
    has not seen yet, its compensable nodes, and whether it stopped at a failed node without compensating."""
    seen = parent.get("results", {})
    # Changed ones too: a branch retried after it stopped answers again for the node it failed at.
    results = {node: result for node, result in state["results"].items() if seen.get(node) != result}
    stopped = state["status"] == ExecutionStatus.FAILED and state["phase"] == Phase.FORWARD
    return BranchFinished(branch, state["status"], results, state["done"], stopped)


def failed_in_compensation(state: State) -> bool:
    """FAILED because a compensation failed for good: a retry may skip it (``Retry(skip=True)``)."""
    return state.get("status") == ExecutionStatus.FAILED and state.get("phase") == Phase.COMPENSATION


def left_to_a_branch(state: State) -> bool:
    """FAILED only because a branch failed in its own compensation: this execution has undone all it had
    (the branch's own retry finishes the branch's part), so a retry here would just end FAILED again."""
    return (
        state.get("status") == ExecutionStatus.FAILED
        and state.get("phase") == Phase.COMPENSATION
        and not state.get("compensate")
        and bool(state.get("branch_failed_for_good"))
    )


def awaited_callback(state: State) -> tuple[str, int] | None:
    """The (node, attempt) whose callback the execution waits for; None for any other wait (a parallel join)."""
    node = state.get("node")
    if state.get("status") != ExecutionStatus.WAITING or not state.get("wait") or node is None:
        return None
    return node, state["attempt"]
