"""`manage.py trama_validate DEFINITION.json [SCENARIO.json] [--validate-only]`: the original Trama's offline
validator and dry run (its ``cli/ValidateCommand.kt`` and ``cli/DryRunSimulator.kt``), on our engine.

Step 1 validates the definition (either format) as ``POST definitions/validate/`` does. Step 2, with a
scenario in the original's format, runs it through our simulation (executions/simulation.py: the worker's
state machine and its one way to perform a call, with mocked answers) and prints the path taken and the
requests rendered. Exit code 0 when valid (and the run succeeded), 1 otherwise, as the original.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand

from definitions.validation import validate_definition
from executions.simulation import SimulationTooLarge, mock_problems, simulate
from trama_project.management.commands._cli import load_json_object

# DryRunSimulator.kt's StepMock: status + body for a sync node, acceptedStatus + callbackBody for an async one.
SCENARIO_FIELDS = {"payload", "steps"}
MOCK_FIELDS = {"status": "status", "body": "body", "acceptedStatus": "status", "callbackBody": "callback"}
DIVIDER = "━" * 60


class Failed(Exception):
    """The definition or the run failed: the lines are printed, the exit code is 1."""


class Command(BaseCommand):
    help = (
        "Validate a definition (the original Trama's format or ours) and, given a scenario of mocked "
        "answers ({payload, steps: {node: {status, body, acceptedStatus, callbackBody}}}), dry-run it. "
        "Exit code 0 when it is valid and the run succeeds, 1 otherwise."
    )

    def add_arguments(self, parser):
        parser.add_argument("definition", help="Definition JSON file.")
        parser.add_argument("scenario", nargs="?", help="Scenario JSON file (the original's dry-run format).")
        parser.add_argument("--validate-only", action="store_true", help="Skip the dry run even with a scenario.")

    def handle(self, *args, definition: str, scenario: str | None, validate_only: bool, **options):
        source = load_json_object(definition, "definition")
        simulate_too = scenario is not None and not validate_only
        try:
            spec = self._validate(source, total=2 if simulate_too else 1)
            if simulate_too:
                self._simulate(spec, load_json_object(scenario, "scenario"))
            else:
                if scenario is None:
                    self.stdout.write("Tip: pass a scenario file to also simulate the execution.\n")
                self.stdout.write("OK")
        except Failed:
            raise SystemExit(1) from None  # everything is printed already; CommandError would add a blank line

    def _validate(self, source: dict, total: int) -> dict:
        self.stdout.write(f"\n{DIVIDER}\n  trama validate  ·  {source.get('name')} / {source.get('version', '-')}")
        self.stdout.write(f"{DIVIDER}\n\n[1/{total}] Structural validation")
        result = validate_definition(source)
        if result.errors:
            for error in result.errors:
                self.stdout.write(f"  ✗ {error['path'] or '(root)'}: {error['message']}")
            self.stdout.write(f"\n{len(result.errors)} error(s) found. Fix them before running a simulation.")
            raise Failed
        types = [node["type"] for node in result.spec["nodes"].values()]
        counts = ", ".join(f"{types.count(t)} {t}" for t in sorted(set(types)))
        self.stdout.write(f"  ✓ {len(types)} nodes  ({counts})\n  ✓ all node references resolve\n")
        return result.spec

    def _simulate(self, spec: dict, scenario: dict) -> None:
        payload, mocks, problems = scenario_mocks(scenario)
        problems += [{**p, "path": "steps" + p["path"][len("mocks") :]} for p in mock_problems(spec, mocks)]
        if problems:
            for problem in problems:
                self.stdout.write(f"  ✗ scenario {problem['path']}: {problem['message']}")
            raise Failed
        summary = ", ".join(f"{key}={_text(value)}" for key, value in list(payload.items())[:4])
        self.stdout.write(f"[2/2] Execution simulation\n  payload: {{{summary}}}\n")
        try:
            result = simulate(spec, payload, mocks)
        except SimulationTooLarge as exc:
            self.stdout.write(f"  ✗ {exc}")
            raise Failed from None
        for step in result.steps:
            self.stdout.write("\n".join(trace_lines(step)) + "\n")
        if result.status != "SUCCEEDED":
            error = result.error or {}
            self.stdout.write(
                f"  ✗ {result.status} at '{error.get('node')}': {error.get('message')}\n\nSimulation failed."
            )
            raise Failed
        self.stdout.write(f"  ✓ SUCCEEDED  (path: {' → '.join(result.path)})\n\nAll checks passed.")


def scenario_mocks(scenario: dict) -> tuple[dict, dict, list[dict]]:
    """(payload, our simulation's mocks, problems) of a scenario in the original's format."""
    problems = [{"path": key, "message": f"unknown field '{key}'"} for key in scenario if key not in SCENARIO_FIELDS]
    payload, steps = scenario.get("payload", {}), scenario.get("steps", {})
    if not isinstance(payload, dict):
        problems.append({"path": "payload", "message": "payload must be an object"})
    if not isinstance(steps, dict):
        return {}, {}, [*problems, {"path": "steps", "message": "steps must be an object: node id -> mock"}]
    mocks: dict[str, Any] = {}
    for node_id, mock in steps.items():
        if not isinstance(mock, dict):
            mocks[node_id] = mock  # mock_problems names it
            continue
        problems += [
            {"path": f"steps.{node_id}.{key}", "message": f"unknown field '{key}'"}
            for key in mock
            if key not in MOCK_FIELDS
        ]
        mocks[node_id] = {MOCK_FIELDS[key]: value for key, value in mock.items() if key in MOCK_FIELDS}
    return (payload if isinstance(payload, dict) else {}), mocks, problems


def trace_lines(step: dict) -> list[str]:
    """One node attempt as DryRunSimulator.kt prints it: the request rendered, what came back."""
    kind, detail = step["node_type"], step.get("detail") or {}
    arrow = "↩" if step["phase"] == "compensation" else "→"
    label = {"task": "sync", "async_task": "async"}.get(kind, kind)
    mark = "✓" if step["status"] == "succeeded" else "✗"
    lines = [f"  {arrow} {step['node_id']:<20} [{label}{'' if mark == '✓' else ' ✗'}]  attempt {step['attempt']}"]
    if kind == "switch":
        matched = detail.get("matched_case")
        routing = "no case matched, used default" if matched is None else f"matched case {matched}"
        return [*lines, f"      {routing}  →  {detail.get('next')}", ""]
    request = step.get("request") or {}
    if request:
        lines.append(f"      {request.get('method', ''):<7} {request.get('url', '')}")
        if request.get("body") not in (None, {}):
            lines.append(f"      body    {_text(request['body'])}")
    response = step.get("response")
    if response is not None:
        lines.append(f"      ← {response['status']}  {mark}  {_text(response['body'])}")
    if "callback" in detail:
        lines.append(f"      callback ← {_text(detail['callback'])}")
    if step.get("error") and response is None:
        lines.append(f"      ✗ {step['error'].get('message')}")
    return [*lines, ""]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), ensure_ascii=False)
