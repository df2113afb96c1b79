"""The event history of an execution page, derived from what the database already records.

Steps (as the API serializes them: requests stored with secrets masked,
callback bodies scrubbed when received) and OperatorAction rows become one
chronological list of events: attempts, waits and the callbacks that ended
them, sleeps and the timers that fired, retries scheduled, compensations,
notifications, and operator actions. Nothing here writes; nothing is added to
the engine's hot path. What is not recorded cannot be shown: a heartbeat, a
callback refused (409/410/403) and the moment a parked callback arrived
leave no row of their own.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.urls import reverse

from executions.models import OperatorAction

# Step node types whose single step is a span with its own meaning (not an HTTP attempt).
_KIND_BY_TYPE = {"async_task": "wait", "sleep": "sleep", "parallel": "fork", "switch": "decision"}
_FAILED = ("failed", "timed_out")


def history_events(steps: list[dict], actions: Iterable[OperatorAction], backoff_until: str | None) -> list[dict]:
    """Every event in time order. ``steps`` are serialized steps in time order; ``backoff_until``
    is when a retry back-off in progress ends (the execution's wake-up time), or None."""
    actions = list(actions)
    events: list[dict] = []
    for index, step in enumerate(steps):
        events.append(_step_event(step))
        ended = _ending_event(step, actions)
        if ended:
            events.append(ended)
        retry = _retry_event(step, steps[index + 1 :], backoff_until)
        if retry:
            events.append(retry)
    events += [_action_event(action) for action in actions]
    # Stable: at one instant, events keep the order written above (a sleep's end before the next step's start),
    # and an operator action comes first (``order`` -1), before what it caused.
    events.sort(key=lambda e: (datetime.fromisoformat(e["at"]), e["order"]))
    for event in events:
        del event["order"]
    return events


def step_key(step: dict) -> str:
    """The page's id of a step (``execution:seq``), as the timeline's bars carry it."""
    return f"{step['execution']}:{step['seq']}"


def _duration_ms(start: str | None, end: str | None) -> int | None:
    if not start or not end:
        return None
    return round((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds() * 1000)


def _event(step: dict, kind: str, at: str, end: str | None, title: str, order: int) -> dict:
    return {
        "kind": kind,
        "at": at,
        "end": end,
        "duration_ms": _duration_ms(at, end),
        "title": title,
        "node": step["node_id"],
        "branch": step["branch"],
        "execution": str(step["execution"]),
        "step": step_key(step),
        "status": step["status"],
        "actor": None,
        "order": order,
    }


def _step_kind(step: dict) -> str:
    if step["phase"] in ("compensation", "notify"):
        return step["phase"]
    return _KIND_BY_TYPE.get(step["node_type"], "attempt")


def _step_event(step: dict) -> dict:
    """The step itself: from its start to its end (or still open), with what was sent and received."""
    kind = _step_kind(step)
    titles = {
        "attempt": f"{step['node_type']} {step['node_id']} attempt {step['attempt']}",
        "compensation": f"compensation of {step['node_id']} attempt {step['attempt']}",
        "notify": f"notify {step['node_id']} attempt {step['attempt']}",
        "wait": f"request sent, waiting for the callback of {step['node_id']} (attempt {step['attempt']})",
        "sleep": f"sleep {step['node_id']}",
        "fork": f"parallel {step['node_id']}: branches started",
        "decision": f"switch {step['node_id']}",
    }
    event = _event(step, kind, step["started_at"], step["finished_at"], titles[kind], 0)
    event["request"] = step["request"]
    if step["response_status"] is not None or step["response_body"] is not None:
        event["response"] = {
            "status": step["response_status"],
            "headers": step["response_headers"],
            "body": step["response_body"],
        }
    event["detail"] = step["detail"]
    event["error"] = step["error"]
    return event


def _ending_event(step: dict, actions: list[OperatorAction]) -> dict | None:
    """What ended a wait or a sleep, as an event of its own: the callback (with its body), the timeout, the timer."""
    if not step["finished_at"] or step["phase"] != "forward":
        return None
    kind = _step_kind(step)
    detail = step["detail"] or {}
    if kind == "wait" and "callback" in detail:
        by_hand = _completed_by_hand(step, actions)
        title = f"callback received for {step['node_id']}: {step['status']}" + (
            " (completed by hand)" if by_hand else ""
        )
        event = _event(step, "callback", step["finished_at"], None, title, 0)
        event["body"] = detail["callback"]
        event["error"] = step["error"]
        return event
    if kind == "wait" and step["status"] == "timed_out":
        return _event(step, "timeout", step["finished_at"], None, f"{step['node_id']} timed out waiting", 0)
    if kind == "sleep" and step["status"] == "succeeded":
        woken = _woken(step, actions)
        title = f"timer fired: {step['node_id']} wakes up" + (" (woken by an operator)" if woken else "")
        return _event(step, "timer", step["finished_at"], None, title, 0)
    if kind == "fork":
        return _event(step, "join", step["finished_at"], None, f"parallel {step['node_id']}: branches joined", 0)
    return None


def _completed_by_hand(step: dict, actions: list[OperatorAction]) -> bool:
    return any(
        a.kind == "complete_callback"
        and str(a.execution_id) == str(step["execution"])
        and a.detail.get("node") == step["node_id"]
        and a.detail.get("attempt") == step["attempt"]
        for a in actions
    )


def _woken(step: dict, actions: list[OperatorAction]) -> bool:
    start, end = datetime.fromisoformat(step["started_at"]), datetime.fromisoformat(step["finished_at"])
    return any(
        a.kind == "wake" and str(a.execution_id) == str(step["execution"]) and start <= a.at <= end for a in actions
    )


def _retry_event(step: dict, later: list[dict], backoff_until: str | None) -> dict | None:
    """A failed attempt followed by the next attempt of the same node: the retry scheduled between them.

    With no next attempt yet, a back-off in progress (``backoff_until``) counts for the last failed step.
    """
    if step["status"] not in _FAILED or not step["finished_at"] or _step_kind(step) in ("sleep", "fork", "decision"):
        return None
    same = (step["execution"], step["node_id"], step["phase"])
    follow = next((s for s in later if (s["execution"], s["node_id"], s["phase"]) == same), None)
    if follow is not None and follow["attempt"] == step["attempt"] + 1:
        until = follow["started_at"]
    elif follow is None and backoff_until and not any(s["execution"] == step["execution"] for s in later):
        until = backoff_until
    else:
        return None
    title = f"retry of {step['node_id']} scheduled: attempt {step['attempt'] + 1}"
    return _event(step, "retry", step["finished_at"], until, title, 0) | {"status": "scheduled"}


_ACTION_TITLES = {
    "cancel": "cancel",
    "retry": "retry from the failed step",
    "retry_skip": "retry, skipping the compensation that failed",
    "wake": "wake (sleep ended now)",
    "rerun": "re-run",
    "complete_callback": "callback completed by hand",
}


def _action_event(action: OperatorAction) -> dict:
    detail = action.detail or {}
    title = _ACTION_TITLES.get(action.kind, action.kind)
    if action.kind == "cancel":
        title += " (compensating)" if detail.get("compensate") else " (without compensation)"
    if action.kind == "complete_callback":
        title += f": {detail.get('node')} {detail.get('outcome')}"
    link = None
    if action.kind == "rerun" and detail.get("execution"):  # where the operator went: the new execution's page
        link = {"url": reverse("ui-execution", args=[detail["execution"]]), "text": detail["execution"][:8]}
    return {
        "kind": "operator",
        "action": action.kind,
        "at": action.at.isoformat(),
        "end": None,
        "duration_ms": None,
        "title": f"{title} by {action.actor}",
        "node": detail.get("node", ""),
        "branch": "",
        "execution": str(action.execution_id),
        "step": f"op:{action.pk}",
        "status": "",
        "actor": action.actor,
        "detail": detail,
        "link": link,
        "order": -1,  # at the same instant as what it caused (a callback applied, a sleep ended): first
    }
