"""`manage.py trama_validate`: the original Trama's offline validator and dry run (cli/ValidateCommand.kt).

Definitions and scenarios are ours, in the shapes of the original's scripts/validate_demo/ (a checkout with a
switch, an async card payment and a sync notify; scenarios with mocked status/body, acceptedStatus/callbackBody).
"""

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

SVC = "http://shop.local"


def task(node_id, next_node=None, mode="sync", **action):
    request = {"url": f"{SVC}/{node_id}", "verb": "POST", "body": {"order": "{{payload.orderId}}"}}
    node = {"kind": "task", "id": node_id, "action": {"mode": mode, "request": request, **action}}
    return node | ({"next": next_node} if next_node else {})


def checkout():
    card = task("card", "notify", mode="async", callback={"timeoutMillis": 60000})
    card["action"]["request"]["body"] = {"order": "{{payload.orderId}}", "cb": "{{runtime.callback.url}}"}
    route = {
        "kind": "switch",
        "id": "route",
        "default": "pix",
        "cases": [{"name": "card", "when": {"==": [{"var": "payload.method"}, "card"]}, "target": "card"}],
    }
    return {
        "name": "checkout",
        "version": "v7",
        "failureHandling": {"type": "retry", "maxAttempts": 1, "delayMillis": 10},
        "entrypoint": "check",
        "nodes": [task("check", "route"), route, task("pix", "notify"), card, task("notify")],
    }


def run(tmp_path, definition, scenario=None, *flags):
    files = []
    for name, content in (("definition.json", definition), ("scenario.json", scenario)):
        if content is not None:
            (tmp_path / name).write_text(json.dumps(content))
            files.append(str(tmp_path / name))
    out = StringIO()
    try:
        call_command("trama_validate", *files, *flags, stdout=out)
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    return code, out.getvalue()


def test_validate_only_reports_the_nodes(tmp_path):
    code, out = run(tmp_path, checkout(), {"payload": {}}, "--validate-only")
    assert code == 0
    assert "trama validate  ·  checkout / v7" in out
    assert "✓ 5 nodes  (1 async_task, 1 switch, 3 task)" in out and out.rstrip().endswith("OK")
    assert "Execution simulation" not in out


def test_structural_errors_name_each_field_and_exit_1(tmp_path):
    broken = checkout()
    broken["entrypoint"] = "chek"
    broken["nodes"][2]["next"] = "notfy"
    code, out = run(tmp_path, broken)
    assert code == 1
    assert "  ✗ entrypoint: " in out and "  ✗ nodes[2].next: " in out
    assert "error(s) found. Fix them before running a simulation." in out


def test_a_scenario_prints_the_path_and_the_rendered_requests(tmp_path):
    scenario = {
        "payload": {"orderId": "o-1", "method": "card"},
        "steps": {
            "check": {"status": 200, "body": {"valid": True}},
            "card": {"acceptedStatus": 202, "callbackBody": {"status": "approved", "auth": "A-1"}},
        },
    }
    code, out = run(tmp_path, checkout(), scenario)
    assert code == 0, out
    assert "payload: {orderId=o-1, method=card}" in out
    assert f"POST    {SVC}/check" in out and 'body    {"order":"o-1"' in out
    assert '← 200  ✓  {"valid":true}' in out
    assert "matched case 0  →  card" in out
    assert 'callback ← {"status":"approved","auth":"A-1"}' in out  # any callback is a success, as in the original
    assert "✓ SUCCEEDED  (path: check → route → card → notify)" in out and "All checks passed." in out


def test_a_failing_step_fails_the_run_after_its_retries(tmp_path):
    scenario = {"payload": {"orderId": "o-2"}, "steps": {"check": {"status": 500, "body": {"error": "expired"}}}}
    code, out = run(tmp_path, checkout(), scenario)
    assert code == 1
    assert out.count('← 500  ✗  {"error":"expired"}') == 2  # maxAttempts 1: one retry, as at run time
    assert "✗ COMPENSATED at 'check'" in out and out.rstrip().endswith("Simulation failed.")


def test_a_bad_scenario_names_the_field(tmp_path):
    scenario = {"payload": {}, "steps": {"check": {"stauts": 200}, "nope": {}}, "extra": 1}
    code, out = run(tmp_path, checkout(), scenario)
    assert code == 1
    assert "✗ scenario extra: unknown field 'extra'" in out
    assert "✗ scenario steps.check.stauts: unknown field 'stauts'" in out
    assert "✗ scenario steps.nope: unknown node 'nope'" in out


def test_a_missing_or_malformed_file_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match="does not exist"):
        call_command("trama_validate", str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(CommandError, match="is not valid JSON"):
        call_command("trama_validate", str(tmp_path / "bad.json"))
