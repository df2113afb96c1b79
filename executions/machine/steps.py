"""Step records: every node attempt becomes one history row, identified by its ``seq``."""

from __future__ import annotations

from datetime import datetime

from executions.choices import Phase
from executions.machine.model import (
    Decision,
    Env,
    EventRejected,
    State,
    StepRecord,
    node_at,
    present,
)
from executions.machine.queries import waits_for


def _node_type(env: Env, st: State) -> str:
    return "notify" if st["phase"] == Phase.NOTIFY else env.node(node_at(st))["type"]


def open_step(env: Env, d: Decision, status: str | None = None, phase: str | None = None, detail=None) -> int:
    """Allocate the next step of the history for the current node attempt.

    Waits and sleeps are written at once (status given) so the history shows
    them while they last; calls and instant nodes are written when they close.
    """
    st = d.state
    st["seq"] += 1
    st["open_seq"] = st["seq"]
    fields = {
        "node_id": st["node"],
        "node_type": _node_type(env, st),
        "phase": phase or st["phase"],
        "attempt": st["attempt"],
        "started_at": env.now.isoformat(),
    }
    if detail is not None:
        fields["detail"] = detail
    st["open_step"] = {"fields": fields, "written": status is not None}
    if status is not None:
        d.actions.append(StepRecord(st["seq"], {**fields, "status": status}, new=True))
    return st["seq"]


def close_step(env: Env, d: Decision, status: str, detail=None, error=None, extra: dict | None = None) -> None:
    st = d.state
    seq, opened = st["open_seq"], st.get("open_step")
    if seq is None or opened is None:
        return
    fields = {} if opened["written"] else dict(opened["fields"])
    fields.update(extra or {})
    fields.update({"status": status, "finished_at": env.now.isoformat()})
    if detail is not None:
        fields["detail"] = {**(opened["fields"].get("detail") or {}), **detail}
    if error is not None:
        fields["error"] = error
    d.actions.append(StepRecord(seq, fields, new=not opened["written"]))
    st["open_seq"], st["open_step"] = None, None


def update_open_step(d: Decision, fields: dict) -> None:
    """Add to the open step (an async request's answer) without closing it."""
    st = d.state
    opened = present(st["open_step"])
    if opened["written"]:
        d.actions.append(StepRecord(present(st["open_seq"]), fields, new=False))
    else:
        opened["fields"].update(fields)


def close_open_step(env: Env, d: Decision, status: str) -> None:
    if d.state["open_seq"] is not None:
        close_step(env, d, status)


def expect_open(st: State, seq: int) -> None:
    if st["open_seq"] != seq:
        raise EventRejected(f"step {seq} is not the open step")


def expect_before_deadline(st: State, when: datetime) -> None:
    """A callback after the deadline is late even if no worker has timed the node out yet."""
    if when >= datetime.fromisoformat(present(st["wait"])["deadline"]):
        raise EventRejected("the node timed out")


def expect_waiting_for(st: State, node: str, attempt: int) -> None:
    if not waits_for(st, node, attempt) or st["cancelled"]:
        raise EventRejected("the node no longer waits for this callback")
