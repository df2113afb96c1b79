"""Turning a machine Call into an HTTP request and its answer into a machine event."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from definitions import templating
from executions import dispatch, machine, telemetry
from executions.models import Execution
from executions.secrets import configured_secrets, scrub_secrets


def env_for(execution: Execution, now: datetime) -> machine.Env:
    definition = execution.definition
    meta = {
        "id": str(execution.pk),
        "definition": definition.name,
        "version": definition.version,
        "started_at": (execution.started_at or execution.created_at).isoformat(),
    }
    return machine.Env(spec=definition.spec, payload=execution.input, execution=meta, now=now, key=str(execution.pk))


def render_request(
    execution: Execution, state: dict, request: dict, env: machine.Env, cb: dict | None = None
) -> tuple[dict, dict] | machine.CallFailed:
    """(what goes on the wire, what the history stores with secrets masked), or a failed attempt."""
    try:
        wire = templating.render(request, machine.template_data(env, state, configured_secrets(), cb))
        recorded = templating.render(request, machine.template_data(env, state, machine.MASKED, cb))
    except templating.TemplateError as exc:
        return machine.CallFailed(state["open_seq"], "template", str(exc))
    recorded.pop("retry", None)
    return wire, recorded


def idempotency_headers(execution: Execution, node: str, attempt: int) -> dict:
    return {"Idempotency-Key": f"{execution.pk}:{node}:{attempt}"}


def call_event(execution: Execution, state: dict, call: machine.Call, env: machine.Env) -> machine.Event:
    rendered = render_request(execution, state, call.request, env)
    if isinstance(rendered, machine.CallFailed):
        return rendered
    wire, recorded = rendered
    key_node = f"{call.node}.compensation" if call.phase == machine.Phase.COMPENSATION else call.node
    telemetry.call_started(execution, call)
    outcome = dispatch.send(wire, idempotency_headers(execution, key_node, call.attempt))
    trace_call_finished(wire, outcome)
    return outcome_event(call.seq, wire, recorded, outcome)


def trace_call_finished(wire: dict, outcome: dispatch.Outcome) -> None:
    """End the attempt's span; its status quotes the error text, which may quote a secret in the URL's host."""
    telemetry.call_finished(wire, replace(outcome, error=scrub_secrets(outcome.error)))


def outcome_event(seq: int, wire: dict, recorded: dict, outcome: dispatch.Outcome, async_call: bool = False):
    """The machine event for an answer (or a failure) to a rendered request.

    This is where what came back enters the history, so it is scrubbed here: the
    response (a service may echo a secret) and the error text (built from the
    request on the wire, it may quote a secret in the URL's host).
    """
    record: dict[str, Any] = {"request": recorded}
    if outcome.response is None:
        return machine.CallFailed(seq, outcome.failure or "network", scrub_secrets(outcome.error), None, record)
    response = scrub_secrets(outcome.response)
    record |= {
        "response_status": response["status"],
        "response_headers": response["headers"],
        "response_body": response["body"],
    }
    if not dispatch.is_success(wire, response["status"]):
        return machine.CallFailed(seq, "status", f"HTTP {response['status']}", response, record)
    if async_call:
        return machine.AsyncAccepted(seq, response, record)
    return machine.CallSucceeded(seq, response, record)
