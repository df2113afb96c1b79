"""JSON Logic limits (TRAMA_RULE_MAX_OPERATIONS, _VALUE_SIZE, _TOTAL_SIZE) in evaluate, the API and a switch.

A 191-byte rule that doubles a string per array item must be refused after a few
kilobytes, not after it has taken hundreds of megabytes of the web process or a worker.
"""

import tracemalloc

import pytest

from definitions.rules import RuleError, RuleLimitExceeded, evaluate
from executions.services import start_execution
from tests.support.definitions import store
from tests.support.engine import drive
from tests.support.specs import sleep, switch

pytestmark = pytest.mark.django_db

# 191 bytes of JSON: {"reduce": [items, accumulator + accumulator, "ab"]}, 2 ** (n + 1) characters after n items.
DOUBLING = {
    "reduce": [
        {"var": "payload.items"},
        {"cat": [{"var": "accumulator"}, {"var": "accumulator"}, ""]},
        {"cat": ["a", "b"]},
    ]
}
DOUBLING_DATA = {"payload": {"items": [{"n": i, "pad": "xxxxxxxx"} for i in range(25)]}}
SIZE_REFUSED = (
    "rule stopped: 'cat' would build a value of more than 100000 characters and items (TRAMA_RULE_MAX_VALUE_SIZE)"
)


def peak_bytes_while(run) -> int:
    """The most memory Python allocated while ``run()`` ran (tracemalloc counts, no clock involved)."""
    tracemalloc.start()
    try:
        run()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_the_doubling_rule_is_refused_with_the_limit_named_before_it_takes_memory():
    def run():
        with pytest.raises(RuleLimitExceeded) as refused:
            evaluate(DOUBLING, DOUBLING_DATA)
        assert str(refused.value) == SIZE_REFUSED

    assert peak_bytes_while(run) < 2_000_000  # unbounded, 25 items reach 2**26 characters (~64 MB)


def test_a_doubling_merge_is_refused_too():
    rule = {"reduce": [{"var": "xs"}, {"merge": [{"var": "accumulator"}, {"var": "accumulator"}]}, [[1]]]}
    with pytest.raises(RuleLimitExceeded) as refused:
        evaluate(rule, {"xs": list(range(40))})
    assert str(refused.value) == SIZE_REFUSED.replace("'cat'", "'merge'")


def test_a_list_of_shared_strings_cannot_be_turned_into_text():
    # 16 references to a 10,000-character string are 16 list items but 160,000 characters as text.
    build = {"reduce": [[1, 2, 3, 4], {"merge": [{"var": "accumulator"}, {"var": "accumulator"}]}, [{"var": "s"}]]}
    with pytest.raises(RuleLimitExceeded, match="'merge' would build a value of more than 100000"):
        evaluate({"==": [build, "x"]}, {"s": "y" * 10_000})


def test_a_value_just_under_the_size_limit_is_built(settings):
    settings.TRAMA_RULE_MAX_VALUE_SIZE = 1000
    assert evaluate({"cat": [{"var": "s"}, "b"]}, {"s": "a" * 999}) == "a" * 999 + "b"
    with pytest.raises(RuleLimitExceeded, match="more than 1000 characters and items"):
        evaluate({"cat": [{"var": "s"}, "b"]}, {"s": "a" * 1000})


def test_a_list_just_under_the_size_limit_is_built(settings):
    settings.TRAMA_RULE_MAX_VALUE_SIZE = 1000
    assert evaluate({"merge": [{"var": "xs"}, 0]}, {"xs": [1] * 999}) == [1] * 999 + [0]
    with pytest.raises(RuleLimitExceeded, match="'merge' would build a value of more than 1000"):
        evaluate({"merge": [{"var": "xs"}, 0]}, {"xs": [1] * 1000})


def test_operations_just_under_the_limit_are_applied(settings):
    rule = {"+": [{"var": "a"}, {"*": [2, 3]}]}  # three operators
    settings.TRAMA_RULE_MAX_OPERATIONS = 3
    assert evaluate(rule, {"a": 1}) == 7
    settings.TRAMA_RULE_MAX_OPERATIONS = 2
    with pytest.raises(RuleLimitExceeded) as refused:
        evaluate(rule, {"a": 1})
    assert str(refused.value) == "rule stopped: it applies more than 2 operators (TRAMA_RULE_MAX_OPERATIONS)"


def test_a_long_loop_is_stopped_by_the_operations_limit():
    rule = {"reduce": [{"var": "xs"}, {"+": [{"var": "accumulator"}, 1]}, 0]}
    with pytest.raises(RuleLimitExceeded, match=r"more than 100000 operators \(TRAMA_RULE_MAX_OPERATIONS\)$"):
        evaluate(rule, {"xs": [1] * 60_000})


def test_many_values_each_under_the_size_limit_are_stopped_by_the_total_limit(settings):
    settings.TRAMA_RULE_MAX_TOTAL_SIZE = 10_000
    rule = {"map": [{"var": "xs"}, {"cat": [{"var": ""}, "!"]}]}
    assert len(evaluate(rule, {"xs": ["a" * 98] * 25})) == 25  # 25 x 99 characters (x 2: measured going in and out)
    with pytest.raises(RuleLimitExceeded) as refused:
        evaluate(rule, {"xs": ["a" * 98] * 60})
    assert str(refused.value) == (
        "rule stopped: its values would hold more than 10000 characters and items in all (TRAMA_RULE_MAX_TOTAL_SIZE)"
    )


def test_an_ordinary_rule_over_a_thousand_items_works_with_the_default_limits():
    items = [{"sku": f"sku-{i}", "qty": i % 3} for i in range(1000)]
    rule = {"map": [{"filter": [{"var": "items"}, {"==": [{"var": "qty"}, 0]}]}, {"cat": ["#", {"var": "sku"}]}]}
    assert evaluate(rule, {"items": items}) == [f"#sku-{i}" for i in range(0, 1000, 3)]


def test_squaring_an_integer_is_stopped_before_it_grows_without_bound():
    rule = {"reduce": [{"var": "xs"}, {"*": [{"var": "accumulator"}, {"var": "accumulator"}]}, 3]}
    with pytest.raises(RuleLimitExceeded) as refused:
        evaluate(rule, {"xs": list(range(64))})
    assert str(refused.value) == "rule stopped: '*' gave an integer of more than 1024 bits"


def test_an_overflowing_float_is_an_error_not_infinity():
    with pytest.raises(RuleError) as refused:
        evaluate({"*": [1.5e308, 1.5]}, {})
    assert str(refused.value) == "'*' gave inf, which is not a JSON number"


def test_the_count_of_one_evaluation_does_not_carry_over_to_the_next(settings):
    settings.TRAMA_RULE_MAX_OPERATIONS = 1
    for _ in range(5):
        assert evaluate({"+": [1, 2]}, {}) == 3


# --- POST /api/v1/expressions/evaluate/ --------------------------------------------------------------

URL = "/api/v1/expressions/evaluate/"


def test_the_api_answers_400_naming_the_limit(api):
    answer = api.post(URL, {"rule": DOUBLING, "data": DOUBLING_DATA}, format="json")
    assert answer.status_code == 400
    assert answer.json()["errors"] == [{"path": "rule", "message": SIZE_REFUSED}]


def test_the_api_answers_400_for_an_overflowing_number_instead_of_a_500(api):
    answer = api.post(URL, {"rule": {"*": [1.5e308, 1.5]}, "data": {}}, format="json")
    assert answer.status_code == 400
    assert answer.json()["errors"] == [{"path": "rule", "message": "'*' gave inf, which is not a JSON number"}]


def test_the_api_evaluates_a_null_rule_to_null(api):
    answer = api.post(URL, {"rule": None, "data": {}}, format="json")
    assert answer.status_code == 200
    assert answer.json() == {"result": None}


# --- A switch node in a worker ---------------------------------------------------------------------


def test_a_switch_rule_over_the_limit_fails_its_node_naming_the_limit():
    definition = store(
        {"route": switch([(DOUBLING, "never")], default="never"), "never": sleep(0)},
        "route",
    )
    execution = drive(start_execution(definition, DOUBLING_DATA["payload"])[0])
    assert execution.status == "COMPENSATED"  # failed, with nothing done before it to undo
    step = execution.steps.get(node_id="route")
    assert step.status == "failed"
    assert step.error == {"message": SIZE_REFUSED}
    assert execution.error == {"node": "route", "failure": "rule", "message": SIZE_REFUSED}
