"""The operator's actions on the execution page: which apply, what each will do, and carrying one out.

Each action calls the service the API calls (executions.services), with the
user's name as ``by``, so the page, the API and the admin leave the same
OperatorAction trace. The view (views.execution_action) only checks the
permission, validates the form and turns a refusal into a message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django import forms

from definitions.services import DefinitionNotFound
from executions import machine, services
from executions.models import FINAL_STATUSES, Execution, ExecutionStatus
from graph_editor.forms import JSONObjectField, json_object


class CancelForm(forms.Form):
    compensate = forms.BooleanField(required=False)


class EmptyForm(forms.Form):
    """No fields: the action takes none."""


class RerunForm(forms.Form):
    """Empty ``input`` means the same input; the API's size limit applies to an edited one."""

    input = JSONObjectField(required=False, widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false"}))
    latest = forms.BooleanField(required=False)

    def clean_input(self):
        value = self.cleaned_data["input"]
        return None if value is None else json_object(value, "input")


class CompleteCallbackForm(forms.Form):
    """``target``: the execution (this one or one of its branches) whose callback is answered."""

    target = forms.UUIDField()
    status = forms.ChoiceField(choices=[("succeeded", "succeeded"), ("failed", "failed")])
    body = JSONObjectField(required=False, widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false"}))

    def clean_body(self):
        value = self.cleaned_data["body"]
        return {} if value is None else json_object(value, "callback body")


@dataclass(frozen=True)
class Operation:
    """One action of the page: its form, the service call, and the message once done."""

    form: type[forms.Form]
    run: Callable[[Execution, dict, str], Execution]
    done: str


def _complete(execution: Execution, data: dict, by: str) -> Execution:
    family = Execution.objects.family_ids([execution.pk])
    if data["target"] not in family:
        raise services.TransitionRefused("that execution is not this one nor one of its branches")
    return services.complete_callback(data["target"], data["status"], data["body"], by=by)


def _rerun(execution: Execution, data: dict, by: str) -> Execution:
    try:
        return services.rerun_execution(execution.pk, payload=data["input"], latest=data["latest"], by=by)
    except DefinitionNotFound as missing:
        raise services.TransitionRefused(str(missing)) from None


OPERATIONS: dict[str, Operation] = {
    "cancel": Operation(
        CancelForm,
        lambda e, d, by: services.cancel_execution(e.pk, compensate=d["compensate"], by=by),
        "Cancel requested.",
    ),
    "retry": Operation(EmptyForm, lambda e, d, by: services.retry_execution(e.pk, by=by), "Retrying."),
    "retry_skip": Operation(
        EmptyForm,
        lambda e, d, by: services.retry_execution(e.pk, skip=True, by=by),
        "Retrying, skipping the compensation that failed.",
    ),
    "wake": Operation(EmptyForm, lambda e, d, by: services.wake_execution(e.pk, by=by), "Woken: the sleep is over."),
    "rerun": Operation(RerunForm, _rerun, "Re-run started: this is the new execution."),
    "complete": Operation(CompleteCallbackForm, _complete, "Callback completed by hand."),
}


def available(execution: Execution, branches: list[Execution]) -> dict:
    """What the page offers now: ``ops`` (keys of OPERATIONS, plus "cancel_now" for a cancel without
    compensation) and ``callback_targets`` (the executions of the family that wait for a callback)."""
    status, state = execution.status, execution.state
    ops = []
    if status not in FINAL_STATUSES:
        ops += ["cancel", "cancel_now"]
    if status == ExecutionStatus.FAILED and not machine.left_to_a_branch(state):  # else the branch is retried
        ops.append("retry")
        if machine.failed_in_compensation(state):
            ops.append("retry_skip")
    if status == ExecutionStatus.SLEEPING:
        ops.append("wake")
    if execution.parent_id is None:
        ops.append("rerun")
    targets = [_callback_target(e) for e in [execution, *branches] if machine.awaited_callback(e.state)]
    if targets:
        ops.append("complete")
    return {"ops": ops, "callback_targets": targets, "failed_node": _failed_node(execution)}


def _callback_target(execution: Execution) -> dict:
    node, attempt = machine.awaited_callback(execution.state) or ("", 0)
    where = f"branch {execution.branch}: " if execution.branch else ""
    return {"id": str(execution.pk), "label": f"{where}{node} (attempt {attempt})"}


def _failed_node(execution: Execution) -> str:
    """The node whose failure an operator retries (from the execution's error), for the confirmation text."""
    error = execution.error if isinstance(execution.error, dict) else {}
    node = str(error.get("node") or execution.current_node or "")
    return f"{node} (branch {error['branch']})" if error.get("branch") else node
