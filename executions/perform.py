"""The one way to perform a machine call: render it, send it through a transport, turn the answer into an event.

The worker sends through HTTP (executions/services/calls.py ``HttpTransport``: dispatch.send
with the Idempotency-Key, the callback headers and the call's span); a dry run
(executions/simulation.py) answers from the caller's mocks. Both go through
:func:`render_call` and :func:`perform`, so what a dry run records, and which
event it reports for an answer, cannot drift from a real run.

Async calls are rendered and performed in two steps: the worker makes WAITING
durable (and checks its lease) between them, before the request leaves.
No ORM here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from definitions import templating
from executions import machine
from executions.dispatch import Outcome, is_success
from executions.secrets import scrub_secrets

AnyCall = machine.Call | machine.SendAsync


@dataclass(frozen=True)
class Rendered:
    """A rendered request: ``wire`` is what is sent (secrets filled in), ``recorded`` what the history
    stores (secrets masked, no retry policy). ``callback`` is the async call's ``{"url", "token"}``."""

    wire: dict
    recorded: dict
    callback: dict | None = None


class Transport(Protocol):
    """Sends one rendered call and reports what came back; never raises for a failed send."""

    def __call__(self, call: AnyCall, rendered: Rendered) -> Outcome: ...


def render_call(
    call: AnyCall, state: dict, env: machine.Env, secrets: Any, callback: dict | None = None
) -> Rendered | machine.CallFailed:
    """The call's request rendered for the wire (with ``secrets``) and for the history, or a failed attempt.

    A dry run passes ``machine.MASKED`` as ``secrets``: nothing it holds may carry a secret.
    """
    try:
        wire = machine.render(env, state, call.request, secrets, callback)
        if secrets is machine.MASKED:
            recorded = dict(wire)  # the same text: render once
        else:
            recorded = machine.render(env, state, call.request, machine.MASKED, callback)
    except templating.TemplateError as exc:
        return machine.CallFailed(call.seq, "template", str(exc))
    recorded.pop("retry", None)
    return Rendered(wire, _without_defaults(recorded), callback)


def _without_defaults(request: dict) -> dict:
    """The recorded request without empty ``headers`` / ``query`` and an unset ``success_status``.

    Every step row stores its request: leaving out what says nothing keeps the
    history small (issue #15: at most 3 KB for a finished 3-step execution).
    """
    return {k: v for k, v in request.items() if k not in _OMITTED_WHEN_EMPTY or v not in (None, {}, [])}


_OMITTED_WHEN_EMPTY = frozenset({"headers", "query", "success_status"})
# Transport headers say how the bytes travelled, not what the service answered; the history leaves them out
# (templates still see every header of the live response).
_TRANSPORT_HEADERS = frozenset({"date", "server", "content-length", "connection", "keep-alive", "transfer-encoding"})


def recorded_headers(headers: dict) -> dict:
    """The response headers a step keeps: all but the transport ones."""
    return {name: value for name, value in headers.items() if name.lower() not in _TRANSPORT_HEADERS}


def perform(call: AnyCall, rendered: Rendered, transport: Transport) -> machine.Event:
    """Send ``rendered`` through ``transport``; the machine event for what came back."""
    outcome = transport(call, rendered)
    return outcome_event(call, rendered, outcome)


def perform_call(
    call: machine.Call, state: dict, env: machine.Env, secrets: Any, transport: Transport
) -> machine.Event:
    """A synchronous call from start to end: render, then perform (or the template failure)."""
    rendered = render_call(call, state, env, secrets)
    if isinstance(rendered, machine.CallFailed):
        return rendered
    return perform(call, rendered, transport)


def outcome_event(call: AnyCall, rendered: Rendered, outcome: Outcome) -> machine.Event:
    """The machine event for an answer (or a failure) to a rendered request.

    This is where what came back enters the history, so it is scrubbed here: the
    response (a service may echo a secret) and the error text (built from the
    request on the wire, it may quote a secret in the URL's host).
    """
    seq = call.seq
    record: dict[str, Any] = {"request": rendered.recorded}
    if outcome.response is None:
        return machine.CallFailed(seq, outcome.failure or "network", scrub_secrets(outcome.error), None, record)
    response = scrub_secrets(outcome.response)
    record |= {
        "response_status": response["status"],
        "response_headers": recorded_headers(response["headers"]),
        "response_body": response["body"],
    }
    if not is_success(rendered.wire, response["status"]):
        return machine.CallFailed(seq, "status", f"HTTP {response['status']}", response, record)
    if isinstance(call, machine.SendAsync):
        return machine.AsyncAccepted(seq, response, record)
    return machine.CallSucceeded(seq, response, record)
