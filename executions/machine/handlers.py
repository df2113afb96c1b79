"""``decide``: one handler per event, applying it to a copy of the state."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from executions.choices import FINAL_STATUSES, ExecutionStatus, Phase, StepStatus
from executions.machine.flow import (
    abandon_wait,
    back_off,
    end_notify,
    fail_node,
    finish,
    goto,
    join_branches,
    recheck_join,
    retry_policy,
    retry_stopped_branches,
    retryable,
    send_async,
    start_compensation,
    wait_timed_out,
    walk,
    working_status,
)
from executions.machine.model import (
    JOIN_RECHECK,
    AsyncAccepted,
    BranchFinished,
    CallbackArrived,
    CallFailed,
    CallSucceeded,
    Cancel,
    CancelBranches,
    Decision,
    Env,
    Event,
    EventRejected,
    Heartbeat,
    Resume,
    Retry,
    State,
    Wake,
    copy_json,
    dialect,
    new_state,
    node_at,
    note_completed,
    present,
)
from executions.machine.queries import left_to_a_branch
from executions.machine.steps import (
    close_open_step,
    close_step,
    expect_before_deadline,
    expect_open,
    expect_waiting_for,
    update_open_step,
)

# How much of a failed callback's ``error`` the execution's error message repeats (all of it stays under "error").
REPORTED_ERROR_CHARS = 500


def decide(env: Env, state: State, event: Event) -> Decision:
    """Apply ``event`` to ``state``; the input state is not modified."""
    st = copy_json(state)
    if st["status"] in FINAL_STATUSES and not _applies_when_final(env, st, event):
        raise EventRejected(f"execution is {st['status']}")
    handler = _HANDLERS[type(event)]
    return handler(env, st, event)


def _applies_when_final(env: Env, st: State, event: Event) -> bool:
    if isinstance(event, Retry):
        return st["status"] == ExecutionStatus.FAILED or _restarts_when_retried(env, st)
    return isinstance(event, Cancel) and event.overrule_success and st["status"] == ExecutionStatus.SUCCEEDED


def _on_resume(env: Env, st: State, event: Resume) -> Decision:
    d = Decision(st)
    if st.get("join") and present(st["join"])["pending"]:
        return recheck_join(env, d)  # branches still running: they wake this execution
    if st["status"] == ExecutionStatus.PENDING:
        st["status"], st["node"], st["attempt"] = ExecutionStatus.RUNNING, st["node"] or env.spec["start"], 1
        return walk(env, d)
    if st["status"] == ExecutionStatus.SLEEPING:
        return _resume_sleep(env, d)
    if st["status"] == ExecutionStatus.WAITING:
        return _resume_wait(env, d)
    # RUNNING or COMPENSATING: a worker died mid-step or a callback made it runnable.
    return walk(env, d)


def _resume_sleep(env: Env, d: Decision) -> Decision:
    st = d.state
    until = datetime.fromisoformat(present(st["sleep"])["until"])
    if env.now < until:
        d.due_at = until  # woken early (a duplicate wake-up): sleep on
        return d
    return _end_sleep(env, d)


def _end_sleep(env: Env, d: Decision) -> Decision:
    st = d.state
    kind = present(st["sleep"])["kind"]
    st["sleep"] = None
    if kind == "node":
        close_step(env, d, StepStatus.SUCCEEDED)
        st["status"] = ExecutionStatus.RUNNING
        return goto(env, d, env.node(node_at(st)).get("next"))
    st["status"] = working_status(st)
    return walk(env, d)  # back-off over: the next attempt


def _resume_wait(env: Env, d: Decision) -> Decision:
    st = d.state
    wait = present(st["wait"])
    deadline = datetime.fromisoformat(wait["deadline"])
    if env.now >= deadline:
        return wait_timed_out(env, d)
    if wait["acked"]:
        d.due_at = deadline
        return d
    resend_at = datetime.fromisoformat(wait["resend_at"])
    if env.now < resend_at:
        d.due_at = min(resend_at, deadline)
        return d
    # The sender died between committing WAITING and getting its answer: send again (same attempt, same key).
    return send_async(env, d, resend=True)


def _on_call_succeeded(env: Env, st: State, event: CallSucceeded) -> Decision:
    d = Decision(st)
    expect_open(st, event.seq)
    close_step(env, d, StepStatus.SUCCEEDED, extra=event.record)
    node_id = node_at(st)
    if st["phase"] == Phase.NOTIFY:
        return end_notify(env, d)
    if st["phase"] == Phase.COMPENSATION:
        st["compensate"].pop(0)
        st["attempt"] = 1
        return walk(env, d)
    st["results"][node_id] = {"response": event.response}
    st["last_call"] = node_id
    note_completed(env, st, node_id)
    if env.node(node_id).get("compensation"):
        st["done"].append(node_id)
    return goto(env, d, env.node(node_id).get("next"))


def _on_call_failed(env: Env, st: State, event: CallFailed) -> Decision:
    d = Decision(st)
    expect_open(st, event.seq)
    close_step(env, d, StepStatus.FAILED, error={"failure": event.failure, "message": event.error}, extra=event.record)
    if event.response is not None and st["phase"] == Phase.FORWARD:
        st["results"][node_at(st)] = {"response": event.response}
    policy = retry_policy(env, st)
    error = {"node": st["node"], "attempt": st["attempt"], "failure": event.failure, "message": event.error}
    if st["attempt"] < policy["max_attempts"] and retryable(policy, event):
        return back_off(env, d, policy)
    return fail_node(env, d, error)


def _on_async_accepted(env: Env, st: State, event: AsyncAccepted) -> Decision:
    d = Decision(st)
    expect_open(st, event.seq)
    if st["status"] != ExecutionStatus.WAITING or present(st["wait"])["acked"]:
        raise EventRejected("not waiting for an acknowledgement")
    present(st["wait"])["acked"] = True
    st["results"][node_at(st)] = {"response": event.response}
    update_open_step(d, event.record)
    d.due_at = datetime.fromisoformat(present(st["wait"])["deadline"])
    return d


def _on_callback(env: Env, st: State, event: CallbackArrived) -> Decision:
    d = Decision(st)
    expect_waiting_for(st, event.node, event.attempt)
    expect_before_deadline(st, datetime.fromisoformat(event.received_at) if event.received_at else env.now)
    st["wait"] = None
    result = st["results"].setdefault(event.node, {})
    result["callback"] = {"body": event.body}
    st["status"] = ExecutionStatus.RUNNING
    if event.outcome == "succeeded":
        close_step(env, d, StepStatus.SUCCEEDED, detail={"callback": event.body})
        st["last_call"] = event.node
        note_completed(env, st, event.node)
        if env.node(event.node).get("compensation"):
            st["done"].append(event.node)
        return goto(env, d, env.node(event.node).get("next"), run=False)
    reported = _reported_error(event.body)
    close_step(env, d, StepStatus.FAILED, detail={"callback": event.body}, error=reported)
    policy = env.node(event.node)["retry"]
    error = {"node": event.node, "attempt": event.attempt, "failure": "callback", **reported}
    if st["attempt"] < policy["max_attempts"]:
        return back_off(env, d, policy)
    return fail_node(env, d, error, run=False)


def _reported_error(body) -> dict:
    """The error of a failed callback: the service's own ``error`` field, kept whole and named in the message."""
    error = body.get("error") if isinstance(body, dict) else None
    if error is None:
        return {"message": "callback reported failure"}
    text = error.get("message") if isinstance(error, dict) else error
    if not isinstance(text, str):
        text = json.dumps(error)
    if len(text) > REPORTED_ERROR_CHARS:
        text = f"{text[: REPORTED_ERROR_CHARS - 3]}..."
    return {"message": f"callback reported failure: {text}", "error": error}


def _on_heartbeat(env: Env, st: State, event: Heartbeat) -> Decision:
    d = Decision(st)
    expect_waiting_for(st, event.node, event.attempt)
    expect_before_deadline(st, env.now)
    node = env.node(event.node)
    extension = node.get("heartbeat_s") or node["timeout_s"]
    deadline = max(datetime.fromisoformat(present(st["wait"])["deadline"]), env.now + timedelta(seconds=extension))
    present(st["wait"])["deadline"] = deadline.isoformat()
    d.due_at = deadline if present(st["wait"])["acked"] else datetime.fromisoformat(present(st["wait"])["resend_at"])
    return d


def _on_cancel(env: Env, st: State, event: Cancel) -> Decision:
    d = Decision(st)
    st["cancelled"] = True
    st["output"] = None
    close_open_step(env, d, StepStatus.CANCELLED)
    abandon_wait(env, st)
    st["sleep"] = None
    st["failure"] = st["failure"] or {"message": "cancelled"}
    join = st.get("join")
    if join and join["pending"]:
        join["failed"] = True
        d.actions.append(CancelBranches(list(join["pending"]), event.compensate))
    if not event.compensate:
        return finish(env, d, ExecutionStatus.CANCELLED, error={"message": "cancelled"})
    if st["phase"] == Phase.FORWARD:
        start_compensation(st)
    st["status"] = ExecutionStatus.COMPENSATING
    return walk(env, d, run=False)


def _on_wake(env: Env, st: State, event: Wake) -> Decision:
    if st["status"] != ExecutionStatus.SLEEPING:
        raise EventRejected("execution is not sleeping")
    d = Decision(st)
    present(st["sleep"])["until"] = env.now.isoformat()
    d.due_at = env.now
    return d


def _restarts_when_retried(env: Env, st: State) -> bool:
    """A compensated saga in the original's v1 format is retried from its first step, as the original's
    ``POST /workflows/{id}/retry`` does (app/Application.kt: it never records a failed step index, so it
    starts over at step 0); the original refuses to retry a v2 workflow."""
    return st["status"] == ExecutionStatus.COMPENSATED and (dialect(env) or {}).get("name") == "trama-v1"


def _restart(env: Env, st: State) -> Decision:
    """Start the execution over at its first node; the history so far is kept (step numbers go on)."""
    fresh = new_state()
    fresh["seq"], fresh["node"], fresh["attempt"] = st["seq"], env.spec["start"], 1
    fresh["status"] = ExecutionStatus.RUNNING
    d = Decision(fresh)
    d.due_at = env.now
    return d


def _on_retry(env: Env, st: State, event: Retry) -> Decision:
    """Resume a FAILED execution from the node, or compensation, that failed."""
    if _restarts_when_retried(env, st) and not event.skip:
        return _restart(env, st)
    if st["status"] != ExecutionStatus.FAILED:
        raise EventRejected("only a FAILED execution can be retried")
    d = Decision(st)
    join = st.get("join")
    if join and join.get("stopped"):
        if event.skip:
            raise EventRejected("skip applies to a failed compensation only")
        return retry_stopped_branches(env, d)
    if left_to_a_branch(st):
        branch = (st["error"] or {}).get("branch", "")
        raise EventRejected(
            f"branch '{branch}' ended FAILED and everything else is already compensated; "
            "retry that branch's own execution"
        )
    st["error"], st["output"] = None, None
    if st["phase"] == Phase.COMPENSATION and event.skip:
        st["compensate"].pop(0)
    elif event.skip:
        raise EventRejected("skip applies to a failed compensation only")
    st["attempt"] = st.get("attempt", 0) + 1 if not event.skip else 1
    st["status"] = working_status(st)
    if st["phase"] == Phase.FORWARD:
        st["failure"] = None
    d.due_at = env.now
    return d


def _on_branch_finished(env: Env, st: State, event: BranchFinished) -> Decision:
    d = Decision(st)
    join = st.get("join")
    if not join or event.branch not in join["pending"]:
        raise EventRejected(f"not waiting for branch '{event.branch}'")
    join["pending"].remove(event.branch)
    st["results"].update(event.results)
    if event.status == ExecutionStatus.FAILED:
        st["branch_failed_for_good"] = True  # a branch needs an operator, so the whole execution does
    if event.status == ExecutionStatus.SUCCEEDED:
        join["done"][event.branch] = event.done
    elif event.stopped:
        # Nothing undone, as a stopped node on the main line: the others run on, a retry resumes this one.
        join.setdefault("stopped", []).append(event.branch)
    elif not join["failed"]:
        join["failed"] = True
        message = f"branch '{event.branch}' ended {event.status}"
        st["failure"] = {"node": join["node"], "branch": event.branch, "failure": "branch", "message": message}
        if join["pending"]:
            d.actions.append(CancelBranches(list(join["pending"]), compensate=True))
    if join["pending"]:
        d.due_at = env.now + JOIN_RECHECK
        return d
    return join_branches(env, d)


_HANDLERS: dict[type, Callable[[Env, State, Any], Decision]] = {
    Resume: _on_resume,
    CallSucceeded: _on_call_succeeded,
    CallFailed: _on_call_failed,
    AsyncAccepted: _on_async_accepted,
    CallbackArrived: _on_callback,
    Heartbeat: _on_heartbeat,
    Cancel: _on_cancel,
    Wake: _on_wake,
    Retry: _on_retry,
    BranchFinished: _on_branch_finished,
}
