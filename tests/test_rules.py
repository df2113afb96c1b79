"""definitions.rules: the official JsonLogic suite, operator allow-list, error reporting."""

import json
from pathlib import Path
from typing import Any

import pytest

from definitions.rules import RuleError, evaluate, rule_problems

# A copy inside the repository (tests/data/README.md names its source), so a fresh clone runs it anywhere.
OFFICIAL_SUITE = Path(__file__).resolve().parent / "data" / "jsonlogic-official-tests.json"


def _official_cases() -> list[Any]:
    """Every [rule, data, expected] case, id'd by its section; a missing file fails collection, never skips."""
    cases, section = [], "start"
    for item in json.loads(OFFICIAL_SUITE.read_text()):
        if isinstance(item, str):
            section, index = item.strip("# ").strip(), 0
            continue
        index += 1
        cases.append(pytest.param(*item, id=f"{section}-{index}"))
    return cases


OFFICIAL_CASES = _official_cases()


def _as_json(value: Any) -> str:
    """JSON text, so 1 vs 1.0 vs true and list vs dict differences are not hidden by Python equality."""
    return json.dumps(value, sort_keys=True)


def test_official_suite_is_loaded_in_full():
    assert len(OFFICIAL_CASES) >= 270


@pytest.mark.parametrize(("rule", "data", "expected"), OFFICIAL_CASES)
def test_official_jsonlogic_case_passes(rule, data, expected):
    assert _as_json(evaluate(rule, data)) == _as_json(expected)


def test_reduce_evaluates_a_rule_as_initial_value():
    rule = {"reduce": [{"var": "xs"}, {"+": [{"var": "current"}, {"var": "accumulator"}]}, {"var": "start"}]}
    assert evaluate(rule, {"xs": [1, 2, 3], "start": 10}) == 16


def test_reduce_initial_rule_is_evaluated_in_the_enclosing_scope_when_nested_in_map():
    inner = {"reduce": [{"var": "xs"}, {"+": [{"var": "current"}, {"var": "accumulator"}]}, {"var": "base"}]}
    data = {"groups": [{"xs": [1, 2], "base": 100}, {"xs": [], "base": 7}]}
    assert evaluate({"map": [{"var": "groups"}, inner]}, data) == [103, 7]


def test_switch_style_rule_reads_node_responses():
    data = {"nodes": {"reserve": {"response": {"body": {"id": "r-1"}}}}}
    assert evaluate({"==": [{"var": "nodes.reserve.response.body.id"}, "r-1"]}, data) is True


def test_unknown_operator_raises_rule_error_naming_it():
    with pytest.raises(RuleError, match="unknown operator 'foo'"):
        evaluate({"and": [True, {"foo": [1]}]}, {})


def test_method_operator_is_refused_by_rule_problems():
    rule = {"method": [{"var": "d"}, "clear"]}
    assert rule_problems(rule, "when") == [{"path": "when", "message": "unknown operator 'method'"}]


def test_method_operator_is_refused_by_evaluate_and_data_is_not_mutated():
    data = {"d": {"keep": 1}}
    with pytest.raises(RuleError, match="unknown operator 'method'"):
        evaluate({"method": [{"var": "d"}, "clear"]}, data)
    assert data == {"d": {"keep": 1}}


def test_method_nested_deep_inside_a_rule_is_refused_before_anything_runs():
    data = {"d": {"keep": 1}}
    rule = {"if": [False, {"method": [{"var": "d"}, "clear"]}, {"method": [{"var": "d"}, "popitem"]}]}
    with pytest.raises(RuleError, match="method"):
        evaluate(rule, data)
    assert data == {"d": {"keep": 1}}


def test_refusing_method_leaves_the_shared_json_logic_module_untouched():
    import json_logic

    assert "method" in json_logic.operations


@pytest.mark.parametrize("operator", ["log", "count", "datetime.date"])
def test_non_standard_operators_are_unknown(operator):
    assert rule_problems({operator: [1]}, "r") == [{"path": "r", "message": f"unknown operator {operator!r}"}]


def test_rule_problems_paths_point_at_the_object_holding_the_unknown_operator():
    rule = {"and": [{"==": [1, 1]}, {"foo": [{"bar": 1}]}, {"!": {"baz": 2}}]}
    assert rule_problems(rule, "nodes.route.cases[0].when") == [
        {"path": "nodes.route.cases[0].when.and[1]", "message": "unknown operator 'foo'"},
        {"path": "nodes.route.cases[0].when.and[1].foo[0]", "message": "unknown operator 'bar'"},
        {"path": "nodes.route.cases[0].when.and[2].!", "message": "unknown operator 'baz'"},
    ]


def test_rule_problems_reports_object_with_more_than_one_key():
    problems = rule_problems({"or": [{"==": [1, 1], "var": "x"}]}, "when")
    assert [p["path"] for p in problems] == ["when.or[0]"]
    assert "exactly one operator key" in problems[0]["message"]


def test_rule_problems_reports_empty_object():
    assert [p["path"] for p in rule_problems({}, "when")] == ["when"]


@pytest.mark.parametrize("rule", [True, None, 3, "text", [1, "a"], {"var": "payload.x"}, {"in": ["a", ["a"]]}])
def test_rule_problems_accepts_valid_rules_and_literals(rule):
    assert rule_problems(rule, "when") == []


def test_evaluate_refuses_object_with_more_than_one_key():
    with pytest.raises(RuleError, match="exactly one operator key"):
        evaluate({"==": [1, 1], "var": "x"}, {})


def test_division_by_zero_raises_rule_error():
    with pytest.raises(RuleError, match="ZeroDivisionError"):
        evaluate({"/": [1, 0]}, {})


def test_bad_operand_type_raises_rule_error_instead_of_false():
    with pytest.raises(RuleError, match="ValueError"):
        evaluate({"+": [{"var": "amount"}, 1]}, {"amount": "not-a-number"})


def test_wrong_argument_count_raises_rule_error():
    with pytest.raises(RuleError, match="TypeError"):
        evaluate({"?:": [True]}, {})
