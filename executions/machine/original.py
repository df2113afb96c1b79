"""What the original runtime's templates and rules read, built from Trama's state (pure).

A definition in the original's format (docs/upstream.md) carries ``dialect`` in its spec;
its templates, switch rules and callback rules then see the data the original builds:

* templates: ``TemplateContextBuilder.build`` (app/main/kotlin/run/trama/saga/TemplateRenderer.kt),
  plus ``runtime.callback`` for an async call (saga/workflow/TaskNodeHandler.kt);
* switch rules: ``SwitchNodeHandler.buildEvaluationContext`` (saga/workflow/SwitchNodeHandler.kt);
* callback rules: ``CallbackReceiver.buildEvalContext`` (saga/callback/CallbackReceiver.kt).

The original keeps a list of step results in the order the nodes completed (each task's
response body, and for a switch the ``{target, matchedCase, usedDefault}`` it chose); the
state's ``trail`` is that order. Its ``index`` is the number of tasks completed before it
(``completedNodes.size`` in saga/workflow/WorkflowExecutor.kt), so a switch shares its index
with the task after it, and ``step.<index>`` names the later one, as there.
"""

from __future__ import annotations

from typing import Any

# ExecutionPhase in saga/SagaExecution.kt: what ``phase`` reads, by Trama's phase.
PHASES = {"forward": "UP", "compensation": "DOWN"}
# WorkflowExecutor.kt renders completion callbacks with these step names and phases.
NOTIFY_STEPS = {"succeeded": ("onSuccessCallback", "UP"), "failed": ("onFailureCallback", "DOWN")}


def step_results(state: dict) -> list[dict]:
    """The original's step results (``StepResult``) for ``state``, in the order the nodes completed."""
    entries, tasks = [], 0
    for node_id in state.get("trail") or []:
        result = state["results"].get(node_id) or {}
        switch = result.get("switch")
        body = switch if switch is not None else (result.get("response") or {}).get("body")
        entries.append({"index": tasks, "name": node_id, "body": body})
        tasks += switch is None
    return entries


def template_context(dialect: dict, payload: Any, execution: dict, state: dict, callback: dict | None = None) -> dict:
    """``TemplateContextBuilder.build``: the roots a template of the original reads."""
    results = step_results(state)
    entries = [_with_phases(entry) for entry in results]
    step_name, phase = _step_and_phase(state)
    context = {
        "sagaId": str(execution.get("id", "")),
        "sagaName": execution.get("definition", ""),
        "sagaVersion": dialect.get("version", ""),
        "stepName": step_name,
        "phase": phase,
        "payload": payload,
        "steps": entries,
        "step": _by_index_and_name(entries),
        "nodes": {entry["name"]: {"response": {"body": entry["body"]}} for entry in results},
        "prev": {"body": results[-1]["body"]} if results else None,
    }
    if callback is not None:
        context["runtime"] = {"callback": callback}
    return context


def switch_data(payload: Any, state: dict) -> dict:
    """``SwitchNodeHandler.buildEvaluationContext``: payload, nodes, step (no up/down) and prev."""
    results = step_results(state)
    return {
        "payload": payload,
        "nodes": {entry["name"]: {"response": {"body": entry["body"]}} for entry in results},
        "step": _by_index_and_name(results),
        "prev": {"body": results[-1]["body"]} if results else None,
    }


def callback_rule_data(payload: Any, body: Any) -> dict:
    """``CallbackReceiver.buildEvalContext``: the execution's input and the callback's body."""
    return {"input": payload, "callback": {"body": body}}


def _with_phases(entry: dict) -> dict:
    """A template's step entry: also ``up.body`` and ``down.body``. Trama keeps no compensation's answer
    for templates, so ``down.body`` is null (the original shows it only after reloading its store)."""
    return {**entry, "up": {"body": entry["body"]}, "down": {"body": None}}


def _by_index_and_name(entries: list[dict]) -> dict:
    """``step``: every entry by its index, then by its name; a later entry replaces an earlier one."""
    return {str(entry["index"]): entry for entry in entries} | {entry["name"]: entry for entry in entries}


def _step_and_phase(state: dict) -> tuple[str, str]:
    if state.get("phase") == "notify" and state.get("final"):
        return NOTIFY_STEPS[state["final"]["kind"]]
    return state.get("node") or "", PHASES.get(state.get("phase", ""), "UP")
