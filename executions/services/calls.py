"""The worker's transport: a rendered machine call sent over HTTP (executions/perform.py does the rest)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from executions import dispatch, machine, telemetry
from executions.models import Execution
from executions.perform import AnyCall, Rendered
from executions.secrets import scrub_secrets


def env_for(execution: Execution, now: datetime) -> machine.Env:
    definition = execution.definition
    meta = {
        "id": str(execution.pk),
        "definition": definition.name,
        "version": definition.version,
        "started_at": (execution.started_at or execution.created_at).isoformat(),
    }
    return machine.Env(spec=definition.spec, payload=execution.input, execution=meta, now=now, key=str(execution.pk))


def idempotency_headers(execution: Execution, node: str, attempt: int) -> dict:
    return {"Idempotency-Key": f"{execution.pk}:{node}:{attempt}"}


class HttpTransport:
    """Sends an execution's calls with dispatch.send, inside the attempt's span.

    Adds what Trama puts on every request: the Idempotency-Key (a compensation's
    names ``<node>.compensation``) and, for an async call, the callback URL and token.
    """

    def __init__(self, execution: Execution):
        self.execution = execution

    def __call__(self, call: AnyCall, rendered: Rendered) -> dispatch.Outcome:
        compensation = isinstance(call, machine.Call) and call.phase == machine.Phase.COMPENSATION
        key_node = f"{call.node}.compensation" if compensation else call.node
        headers = idempotency_headers(self.execution, key_node, call.attempt)
        if rendered.callback is not None:
            callback = rendered.callback
            headers = {"X-Trama-Callback-Url": callback["url"], "X-Trama-Callback-Token": callback["token"]} | headers
        telemetry.call_started(self.execution, call, rendered.recorded.get("url"))
        outcome = dispatch.send(rendered.wire, headers)
        trace_call_finished(rendered.wire, outcome)
        return outcome


def trace_call_finished(wire: dict, outcome: dispatch.Outcome) -> None:
    """End the attempt's span; its status quotes the error text, which may quote a secret in the URL's host."""
    succeeded = outcome.response is not None and dispatch.is_success(wire, outcome.response["status"])
    telemetry.call_finished(replace(outcome, error=scrub_secrets(outcome.error)), succeeded)
