"""Walking the graph: entering nodes, failure, retry and compensation, notifications, parallel joins."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from definitions import rules, templating
from definitions.validation.instants import InstantError, parse_instant
from executions.choices import FINAL_STATUSES, ExecutionStatus, Phase, StepStatus
from executions.machine.model import (
    ASYNC_ACK_GRACE_S,
    JOIN_RECHECK,
    MASKED,
    MAX_HOPS_PER_DECISION,
    NOTIFY_ON,
    RETRIED_JOIN_RECHECK,
    Call,
    CallFailed,
    Decision,
    Env,
    Fork,
    Join,
    RetryBranches,
    SendAsync,
    State,
    node_at,
    note_completed,
    present,
    render,
    rule_data,
    rule_holds,
)
from executions.machine.steps import close_open_step, close_step, open_step


def _enter_parallel(env: Env, d: Decision, node: dict) -> None:
    """Fork: each branch runs as an execution of its own, so any free worker advances it."""
    st = d.state
    open_step(env, d, status=StepStatus.WAITING, detail={"branches": node["branches"]})
    st["join"] = {"node": node_at(st), "pending": list(node["branches"]), "done": {}, "failed": False, "stopped": []}
    st["status"] = ExecutionStatus.WAITING
    d.actions.append(Fork(node_at(st), list(node["branches"])))
    d.due_at = env.now + JOIN_RECHECK


def join_branches(env: Env, d: Decision) -> Decision:
    """Every branch has ended: go on at ``next``, or compensate what the branches and the steps before the fork did.

    A branch that succeeded hands its compensable steps to this execution, which
    undoes them after any later failure, or now if another branch failed (a
    branch that failed or was cancelled has compensated its own steps already).
    """
    st = d.state
    join = st["join"]
    assert join is not None, "join_branches runs only while a parallel node waits"
    if not join["failed"] and join.get("stopped"):
        return _stop_at_join(env, d, join)
    st["join"] = None
    node = env.node(join["node"])
    for head in node["branches"]:
        st["done"] += join["done"].get(head, [])
    if not join["failed"]:
        close_step(env, d, StepStatus.SUCCEEDED)
        st["status"], st["node"] = ExecutionStatus.RUNNING, join["node"]
        return goto(env, d, node.get("next"), run=False)
    close_open_step(env, d, StepStatus.FAILED)
    # Also after a cancel that already started compensating: nothing has run while the join held
    # the execution, so the list is rebuilt with the branches' steps in it.
    start_compensation(st)
    st["status"] = ExecutionStatus.COMPENSATING
    return walk(env, d, run=False)


def _stop_at_join(env: Env, d: Decision, join: Join) -> Decision:
    """A branch stopped at a failed node (its ``on_failure`` is "fail") and none failed otherwise: stop FAILED
    here, undoing nothing, as that node would on the main line. The join is kept (with the results and the
    compensable steps of the branches that succeeded), so a retry re-runs the stopped branches and joins again."""
    st = d.state
    close_open_step(env, d, StepStatus.FAILED)
    stopped = join["stopped"]
    names = ", ".join(f"'{head}'" for head in stopped)
    message = f"branch {names} ended FAILED; a retry runs {'it' if len(stopped) == 1 else 'them'} again"
    st["failure"] = {"node": join["node"], "branch": stopped[0], "failure": "branch", "message": message}
    return finish(env, d, ExecutionStatus.FAILED, error=st["failure"])


def retry_stopped_branches(env: Env, d: Decision) -> Decision:
    """Retry of an execution stopped at a join: wait again for the stopped branches, each retried from its
    failed step (RetryBranches); the branches that succeeded keep their results."""
    st = d.state
    join = present(st["join"])
    join["pending"], join["stopped"] = list(join["stopped"]), []
    st["error"], st["output"], st["failure"] = None, None, None
    st["branch_failed_for_good"] = False  # only stopped branches had set it: the join did not fail
    st["status"], st["node"], st["attempt"] = ExecutionStatus.WAITING, join["node"], st["attempt"] + 1
    open_step(env, d, status=StepStatus.WAITING, detail={"branches": join["pending"], "retried": True})
    join["retried"], join["recheck_s"] = list(join["pending"]), RETRIED_JOIN_RECHECK.total_seconds()
    d.actions.append(RetryBranches(list(join["pending"])))
    d.due_at = env.now + RETRIED_JOIN_RECHECK
    return d


def recheck_join(env: Env, d: Decision) -> Decision:
    """The safety re-check of an execution waiting for its branches (they wake it when they end).

    Branches a retry asked for and that have not reported are asked for again: if the process
    that carried out the retry died after its commit, they are still stopped, and this retries them."""
    join = present(d.state["join"])
    again = [b for b in join["pending"] if b in join.get("retried", [])]
    if not again:
        d.due_at = env.now + JOIN_RECHECK
        return d
    d.actions.append(RetryBranches(again))
    # Doubling up to the usual hour: a retried branch that waits a day costs a few re-checks, not thousands.
    gap = min(2 * join.get("recheck_s", RETRIED_JOIN_RECHECK.total_seconds()), JOIN_RECHECK.total_seconds())
    join["recheck_s"] = gap
    d.due_at = env.now + timedelta(seconds=gap)
    return d


def walk(env: Env, d: Decision, run: bool = True) -> Decision:
    """Advance from the current position until a call or a pause.

    ``run=False`` is for events applied outside a worker (a callback, a cancel):
    they only make the execution runnable (due now) and leave the walking to
    the worker the caller enqueues.
    """
    if not run:
        d.due_at = env.now
        return d
    st = d.state
    for _ in range(MAX_HOPS_PER_DECISION):
        if st["status"] in FINAL_STATUSES or d.call is not None or d.due_at is not None:
            return d
        if st["phase"] == Phase.COMPENSATION:
            _next_compensation(env, d)
        elif st["phase"] == Phase.NOTIFY:
            _notify_call(env, d)
        else:
            _enter_node(env, d)
    return fail_node(env, d, {"node": st["node"], "message": "too many nodes without a call in one step (a loop?)"})


def goto(env: Env, d: Decision, next_id: str | None, run: bool = True) -> Decision:
    st = d.state
    if next_id is None:
        return _succeed(env, d, None)
    st["node"], st["attempt"] = next_id, 1
    return walk(env, d, run)


def _enter_node(env: Env, d: Decision) -> None:
    st = d.state
    node = env.node(node_at(st))
    kind = node["type"]
    if kind == "task":
        d.actions.append(Call(open_step(env, d), node_at(st), Phase.FORWARD, st["attempt"], node["request"]))
    elif kind == "async_task":
        send_async(env, d)
    elif kind == "switch":
        _enter_switch(env, d, node)
    elif kind == "sleep":
        _enter_sleep(env, d, node)
    elif kind == "succeed":
        _enter_succeed(env, d, node)
    elif kind == "fail":
        _enter_fail(env, d, node)
    elif kind == "parallel":
        _enter_parallel(env, d, node)
    else:  # validation rejects unknown types
        fail_node(env, d, {"node": st["node"], "message": f"node type '{kind}' is not supported by this engine"})


def send_async(env: Env, d: Decision, resend: bool = False) -> Decision:
    st = d.state
    node = env.node(node_at(st))
    seq = present(st["open_seq"]) if resend else open_step(env, d, status=StepStatus.WAITING)
    deadline = env.now + timedelta(seconds=node["timeout_s"])
    if resend:
        deadline = datetime.fromisoformat(present(st["wait"])["deadline"])
    resend_at = env.now + timedelta(seconds=node["request"]["timeout_s"] + ASYNC_ACK_GRACE_S)
    st["status"] = ExecutionStatus.WAITING
    st["wait"] = {"deadline": deadline.isoformat(), "acked": False, "resend_at": resend_at.isoformat()}
    d.actions.append(SendAsync(seq, node_at(st), st["attempt"], node["request"], deadline))
    return d


def _enter_switch(env: Env, d: Decision, node: dict) -> None:
    st = d.state
    data = rule_data(env, st)
    try:
        target, matched = _pick_case(env, node, data)
    except rules.RuleError as exc:
        open_step(env, d)
        close_step(env, d, StepStatus.FAILED, error={"message": str(exc)})
        fail_node(env, d, {"node": st["node"], "failure": "rule", "message": str(exc)})
        return
    open_step(env, d)
    close_step(env, d, StepStatus.SUCCEEDED, detail={"matched_case": matched, "next": target})
    name = node["cases"][matched].get("name") if matched is not None else None
    # What the original records for a switch (WorkflowExecutor.kt, buildSwitchTraceJson).
    note_completed(env, st, node_at(st), {"target": target, "matchedCase": name, "usedDefault": matched is None})
    st["node"], st["attempt"] = target, 1


def _pick_case(env: Env, node: dict, data: dict) -> tuple[str, int | None]:
    for index, case in enumerate(node["cases"]):
        if rule_holds(env, case["when"], data):
            return case["next"], index
    return node["default"], None


def _enter_sleep(env: Env, d: Decision, node: dict) -> None:
    st = d.state
    try:
        until = _sleep_until(env, st, node)
    except (templating.TemplateError, ValueError) as exc:
        open_step(env, d)
        close_step(env, d, StepStatus.FAILED, error={"message": str(exc)})
        fail_node(env, d, {"node": st["node"], "failure": "template", "message": str(exc)})
        return
    open_step(env, d, status=StepStatus.SLEEPING, detail={"until": until.isoformat()})
    if until <= env.now:
        close_step(env, d, StepStatus.SUCCEEDED)
        st["node"], st["attempt"] = node.get("next"), 1
        if st["node"] is None:
            _succeed(env, d, None)
        return
    st["status"] = ExecutionStatus.SLEEPING
    st["sleep"] = {"until": until.isoformat(), "kind": "node", "since": env.now.isoformat()}
    d.due_at = until


def _sleep_until(env: Env, st: State, node: dict) -> datetime:
    if node.get("duration_s") is not None:
        return env.now + timedelta(seconds=node["duration_s"])
    raw = render(env, st, node["until"], secrets=MASKED)
    try:
        return parse_instant(str(raw))  # validation checked a literal; a rendered template is checked here
    except InstantError as exc:
        raise ValueError(f"until {exc}, got {raw!r}") from None


def _enter_succeed(env: Env, d: Decision, node: dict) -> None:
    st = d.state
    open_step(env, d)
    try:
        output = _render_value(env, st, node.get("output"))
    except templating.TemplateError as exc:
        close_step(env, d, StepStatus.FAILED, error={"message": str(exc)})
        fail_node(env, d, {"node": st["node"], "failure": "template", "message": str(exc)})
        return
    close_step(env, d, StepStatus.SUCCEEDED)
    _succeed(env, d, output, explicit=node.get("output") is not None)


def _enter_fail(env: Env, d: Decision, node: dict) -> None:
    st = d.state
    open_step(env, d)
    try:
        error = _render_value(env, st, node.get("error"))
    except templating.TemplateError as exc:
        error = {"message": str(exc)}
    close_step(env, d, StepStatus.FAILED, error=error)
    failure = {"node": st["node"], "failure": "fail_node", "message": "fail node reached", "error": error}
    fail_node(env, d, failure, on_failure="compensate")


def _render_value(env: Env, st: State, value: Any) -> Any:
    return render(env, st, value, secrets=MASKED) if value is not None else None


def retry_policy(env: Env, st: State) -> dict:
    if st["phase"] == Phase.NOTIFY:
        return env.spec["notify"][present(st["final"])["kind"]]["retry"]
    node = env.node(node_at(st))
    if st["phase"] == Phase.COMPENSATION:
        return env.node(st["compensate"][0])["compensation"]["retry"]
    return node["retry"]


def retryable(policy: dict, event: CallFailed) -> bool:
    if event.failure in ("network", "timeout"):
        return event.failure in policy["retry_on"]
    if event.failure != "status" or event.response is None:
        return False  # template and egress errors fail the same way every time
    status = event.response["status"]
    return status in policy["retry_on"] or f"{status // 100}xx" in policy["retry_on"]


def backoff_seconds(policy: dict, attempt: int, key: str) -> float:
    """Exponential back-off with ±20% jitter derived from ``key`` (deterministic, so testable), capped."""
    base = policy["backoff_s"] * policy["multiplier"] ** (attempt - 1)
    digest = hashlib.sha256(f"{key}:{attempt}".encode()).digest()
    jitter = 0.8 + 0.4 * (int.from_bytes(digest[:4], "big") / 2**32)
    return min(policy["max_backoff_s"], base * jitter)


def back_off(env: Env, d: Decision, policy: dict) -> Decision:
    st = d.state
    delay = backoff_seconds(policy, st["attempt"], f"{env.key}:{st['node']}:{st['phase']}")
    st["attempt"] += 1
    if delay <= 0:
        st["status"] = working_status(st)
        d.due_at = env.now
        return d
    until = env.now + timedelta(seconds=delay)
    st["status"] = ExecutionStatus.SLEEPING
    st["sleep"] = {"until": until.isoformat(), "kind": "backoff", "since": env.now.isoformat()}
    d.due_at = until
    return d


def fail_node(env: Env, d: Decision, error: dict, run: bool = True, on_failure: str | None = None) -> Decision:
    """A node failed for good: compensate, stop, or branch, as its ``on_failure`` says."""
    st = d.state
    st["open_seq"] = None
    if st["phase"] == Phase.NOTIFY:
        return end_notify(env, d)  # a notification that fails for good changes no outcome
    if st["phase"] == Phase.COMPENSATION:
        return finish(env, d, ExecutionStatus.FAILED, error={**error, "phase": Phase.COMPENSATION})
    node = env.node(node_at(st))
    policy = on_failure or node.get("on_failure") or "compensate"
    if policy not in ("compensate", "fail"):
        st["results"].setdefault(node_at(st), {})["error"] = error
        st["status"] = ExecutionStatus.RUNNING
        return goto(env, d, policy, run)
    st["failure"] = error
    if policy == "fail":
        return finish(env, d, ExecutionStatus.FAILED, error=error)
    start_compensation(st)
    st["status"] = ExecutionStatus.COMPENSATING
    return walk(env, d, run)


def wait_timed_out(env: Env, d: Decision) -> Decision:
    st = d.state
    node = env.node(node_at(st))
    close_step(env, d, StepStatus.TIMED_OUT, error={"message": f"no callback within {node['timeout_s']}s"})
    policy = node["retry"]
    if "callback_timeout" in policy["retry_on"] and st["attempt"] < policy["max_attempts"]:
        st["wait"] = None  # the request is sent again; its compensation joins once an attempt succeeds
        return back_off(env, d, policy)
    abandon_wait(env, st)
    st["status"] = ExecutionStatus.RUNNING
    error = {"node": st["node"], "attempt": st["attempt"], "failure": "timeout", "message": "callback timed out"}
    return fail_node(env, d, error, on_failure=node.get("on_timeout") or "compensate")


def abandon_wait(env: Env, st: State) -> None:
    """Give up a wait. A request the service already accepted may have taken effect
    (the callback just never came), so its compensation runs with the others."""
    wait, st["wait"] = st["wait"], None
    if wait and wait["acked"] and env.node(node_at(st)).get("compensation") and node_at(st) not in st["done"]:
        st["done"].append(node_at(st))


def start_compensation(st: State) -> None:
    st["phase"] = Phase.COMPENSATION
    st["compensate"] = list(reversed(st["done"]))
    st["attempt"] = 1


def _next_compensation(env: Env, d: Decision) -> None:
    st = d.state
    if not st["compensate"]:
        status = ExecutionStatus.COMPENSATED
        if st["cancelled"]:
            status = ExecutionStatus.CANCELLED
        elif st.get("branch_failed_for_good"):
            status = ExecutionStatus.FAILED
        finish(env, d, status, error=st["failure"])
        return
    node_id = st["compensate"][0]
    st["node"] = node_id
    request = env.node(node_id)["compensation"]
    seq = open_step(env, d, phase=Phase.COMPENSATION)
    d.actions.append(Call(seq, node_id, Phase.COMPENSATION, st["attempt"], request))


def _succeed(env: Env, d: Decision, output: Any, explicit: bool = False) -> Decision:
    st = d.state
    if not explicit:
        last = st["results"].get(st["last_call"] or "", {})
        output = (last.get("callback") or last.get("response") or {}).get("body")
    return finish(env, d, ExecutionStatus.SUCCEEDED, output=output)


def finish(env: Env, d: Decision, status: str, output: Any = None, error: Any = None, notify: bool = True) -> Decision:
    """End the execution, or first send its ``notify`` request for this outcome (the outcome waits in ``final``)."""
    st = d.state
    kind = NOTIFY_ON.get(status)
    if notify and kind and not st.get("branch") and (env.spec.get("notify") or {}).get(kind):
        st["final"] = {"status": status, "output": output, "error": error, "kind": kind, "phase": st["phase"],
                       "node": st["node"], "attempt": st["attempt"]}  # fmt: skip
        st["status"] = working_status(st)
        st["phase"], st["node"], st["attempt"] = Phase.NOTIFY, f"notify.{kind}", 1
        st["open_seq"], st["sleep"], st["wait"] = None, None, None
        return walk(env, d)
    st["status"], st["output"], st["error"] = status, output, error
    st["open_seq"], st["sleep"], st["wait"] = None, None, None
    d.due_at = None
    return d


def _notify_call(env: Env, d: Decision) -> None:
    st = d.state
    request = env.spec["notify"][present(st["final"])["kind"]]
    d.actions.append(Call(open_step(env, d), node_at(st), Phase.NOTIFY, st["attempt"], request))


def end_notify(env: Env, d: Decision) -> Decision:
    """The notification is done (sent, or given up): the outcome it waited for takes effect."""
    st = d.state
    final, st["final"] = st["final"], None
    assert final is not None, "end_notify runs only in the notify phase"
    st["phase"], st["node"], st["attempt"] = final["phase"], final["node"], final["attempt"]
    st["open_seq"] = None
    return finish(env, d, final["status"], final["output"], final["error"], notify=False)


def working_status(st: State) -> str:
    """RUNNING or COMPENSATING: what an execution that is not paused shows."""
    phase = present(st["final"])["phase"] if st["phase"] == Phase.NOTIFY else st["phase"]
    return ExecutionStatus.COMPENSATING if phase == Phase.COMPENSATION else ExecutionStatus.RUNNING
