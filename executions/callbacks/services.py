"""The callback receiver's logic (SPEC section 4): token, outcome, and the answer code.

The execution is changed only through executions.services.deliver_callback /
record_heartbeat, under the execution's row lock, so two copies of one callback
arriving together resume the execution once, and a callback racing a cancel
ends in exactly one of the two outcomes.
"""

import json
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from definitions import rules, templating
from executions import machine, services
from executions.callback_tokens import CallbackClaims, TokenExpired, TokenInvalid, read_callback_token
from executions.models import Execution, ExecutionStatus, Step, StepPhase
from executions.secrets import scrub_secrets

# What a callback body's ``status`` may say (SPEC 4); "running" is a heartbeat, handled before any outcome.
STATUSES = ("succeeded", "failed", "running")


@dataclass(frozen=True)
class Answer:
    """``field`` names the body key at fault in a 400."""

    status: int
    detail: str
    execution_id: str | None = None
    field: str | None = None


class UnknownStatus(Exception):
    """The body's ``status`` is none of STATUSES and no callback rule decides instead (answer 400)."""


def receive_callback(token: str, body: Any, route: tuple[str, str] | None = None) -> Answer:
    """``route``: the (execution id, node id) a URL names beside the token (the original's callback
    route); a token minted for another execution or node is refused like a forged one."""
    try:
        claims = read_callback_token(token)
    except TokenInvalid:
        return Answer(403, "callback token signature is not valid")
    except TokenExpired as expired:
        claims = expired.claims
        if not _deadline_extended(claims):
            return Answer(410, "callback token has expired")
    if route is not None and route != (claims.execution_id, claims.node_id):
        return Answer(403, "callback token was not minted for this execution and node")
    if not isinstance(body, dict):
        return Answer(400, "callback body must be a JSON object")
    # Scrubbed before anything reads it: the body is stored, judged and compared with the stored copy as one value.
    body = scrub_secrets(body)
    try:
        return _apply(claims, body)
    except UnknownStatus as exc:
        return Answer(400, str(exc), field="status")
    except Execution.DoesNotExist:
        return Answer(404, "unknown execution")
    except services.TransitionRefused:
        return _refused(claims, body)


def _apply(claims: CallbackClaims, body: dict) -> Answer:
    if body.get("status") == "running" and not _written_for_original(claims.execution_id):
        services.record_heartbeat(claims.execution_id, claims.node_id, claims.attempt)
        return Answer(202, "heartbeat recorded; deadline extended", claims.execution_id)
    services.deliver_callback(
        claims.execution_id,
        claims.node_id,
        claims.attempt,
        body,
        lambda spec, payload: callback_outcome(spec, claims.node_id, body, payload),
    )
    return Answer(202, "callback accepted", claims.execution_id)


def _written_for_original(execution_id: Any) -> bool:
    """The execution's definition is in the original's format, which knows no heartbeat: there
    ``{"status": "running"}`` is a callback like any other (asked only of such bodies)."""
    spec = Execution.objects.filter(pk=execution_id).values_list("definition__spec", flat=True).first()
    return templating.is_original((spec or {}).get("dialect"))


def callback_outcome(spec: dict, node_id: str, body: dict, payload: Any) -> str:
    """ "succeeded" or "failed": the node's rules decide when set, else the body's ``status``.

    Raises UnknownStatus for a ``status`` that ``status_problem`` refuses. A definition in the
    original's format is judged as the original does (:func:`_original_outcome`).
    """
    node = spec["nodes"].get(node_id) or {}
    if templating.is_original(spec.get("dialect")):
        return _original_outcome(node, body, payload)
    problem = status_problem(node, body)
    if problem:
        raise UnknownStatus(problem)
    rules_set = node.get("callback") or {}
    try:
        if rules_set.get("failure_when") is not None and rules.evaluate(rules_set["failure_when"], body):
            return "failed"
        if rules_set.get("success_when") is not None:
            return "succeeded" if rules.evaluate(rules_set["success_when"], body) else "failed"
    except rules.RuleError:
        return "failed"  # a rule that cannot judge this body does not count as success
    return "failed" if body.get("status") == "failed" else "succeeded"


def _original_outcome(node: dict, body: dict, payload: Any) -> str:
    """CallbackReceiver.kt (saga/callback/): the rules read ``{input, callback: {body}}``; a failureWhen that
    holds fails, else successWhen decides, else (no rules) every callback succeeds, whatever it says.
    A rule that raises is false there (JsonLogicEvaluator.kt)."""
    rules_set = node.get("callback") or {}
    data = machine.callback_rule_data(payload, body)
    if rules_set.get("failure_when") is not None and rules.holds_as_original(rules_set["failure_when"], data):
        return "failed"
    if rules_set.get("success_when") is not None and not rules.holds_as_original(rules_set["success_when"], data):
        return "failed"
    return "succeeded"


def status_problem(node: dict, body: dict) -> str | None:
    """Why the body's ``status`` cannot be judged, or None.

    Without callback rules, a status Trama does not know is refused: a typo or
    "FAILED" must not move the saga forward as if it had succeeded. With rules,
    ``status`` is the service's own vocabulary, read by the rules.
    """
    rules_set = node.get("callback") or {}
    if any(rules_set.get(key) is not None for key in ("success_when", "failure_when")):
        return None
    if "status" not in body or body["status"] in STATUSES:
        return None
    shown = json.dumps(body["status"])
    shown = shown if len(shown) <= 60 else f"{shown[:57]}..."
    return f'status must be "succeeded", "failed" or "running" (or left out), got {shown}'


def _refused(claims: CallbackClaims, body: dict) -> Answer:
    """The node no longer waits: the same callback again is a 200, anything else a 409."""
    step = (
        Step.objects.filter(
            execution_id=claims.execution_id, node_id=claims.node_id, attempt=claims.attempt, phase=StepPhase.FORWARD
        )
        .order_by("-seq")
        .first()
    )
    if step is not None and (step.detail or {}).get("callback") == body:
        return Answer(200, "callback already applied", claims.execution_id)
    parked = Execution.objects.filter(pk=claims.execution_id).values_list("pending_callback", flat=True).first()
    if parked and parked["attempt"] == claims.attempt and parked["body"] == body:
        return Answer(200, "callback already received", claims.execution_id)
    return Answer(409, "the node no longer waits for this callback (finished, timed out or cancelled)")


def _deadline_extended(claims: CallbackClaims) -> bool:
    """A heartbeat may have pushed the wait past the token's own expiry."""
    execution = Execution.objects.filter(pk=claims.execution_id, status=ExecutionStatus.WAITING).first()
    if execution is None:
        return False
    deadline = machine.wait_deadline(execution.state)
    waits = machine.waits_for(execution.state, claims.node_id, claims.attempt)
    return waits and deadline is not None and deadline > timezone.now()
