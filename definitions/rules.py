"""The one place that evaluates JSON Logic rules (switch cases, callback outcomes).

Built on the ``json_logic`` library (json-logic-qubit), with four corrections that
matter for a workflow runtime:

* only the standard JsonLogic operators are allowed; anything else (``method``,
  which calls arbitrary Python methods on the data and can mutate it, the
  non-standard ``count``, dotted "custom" operations, ``log``, which would copy rule
  data such as secrets into the application log) is an *unknown operator*, refused
  both when a definition is stored (:func:`rule_problems`) and at run time
  (:func:`evaluate`);
* ``reduce`` evaluates its initial value as a rule (the library takes it literally,
  the one case of the official test suite it fails);
* any exception raised while evaluating becomes :class:`RuleError`, so a broken rule
  fails its node with the error recorded instead of looking like ``false``;
* every evaluation is metered (:class:`_Meter`): a rule that would apply more operators
  than ``TRAMA_RULE_MAX_OPERATIONS``, build one value larger than ``TRAMA_RULE_MAX_VALUE_SIZE``
  or build more than ``TRAMA_RULE_MAX_TOTAL_SIZE`` in all stops with :class:`RuleLimitExceeded`.
  Without it a 200-byte ``reduce`` that doubles a string per item eats memory exponentially,
  in the web process and in workers.

The fixes live in a private copy of the library module, so the globally imported
``json_logic`` that other code may use is left exactly as it was.
"""

import importlib.util
import math
from collections.abc import Callable
from contextvars import ContextVar
from functools import reduce
from types import ModuleType
from typing import Any

from django.conf import settings

ALLOWED_OPERATORS = frozenset(
    {
        "var", "missing", "missing_some",
        "if", "?:", "and", "or", "!", "!!",
        "==", "===", "!=", "!==", ">", ">=", "<", "<=",
        "+", "-", "*", "/", "%", "min", "max",
        "map", "filter", "reduce", "all", "none", "some",
        "merge", "in", "cat", "substr",
    }
)  # fmt: skip


# Operators that hand back data or a value another operator built, so there is nothing new to measure.
PASS_THROUGH_OPERATORS = frozenset({"var", "if", "?:", "and", "or"})
# Operators whose result holds about what all their arguments hold: measured before they build it.
BUILDING_OPERATORS = frozenset({"cat", "merge"})
# About the range of a JSON (double) number; integers past it only grow, by multiplying.
MAX_INTEGER_BITS = 1024


class RuleError(Exception):
    """A rule is invalid or raised while evaluating; the message says what went wrong."""


class RuleLimitExceeded(RuleError):
    """A rule would do more work, or build a bigger value, than the settings allow."""


class _Meter:
    """What one evaluation has done so far: operators applied and characters and items built."""

    def __init__(self, max_operations: int, max_value_size: int, max_total_size: int) -> None:
        self.max_operations, self.max_value_size, self.max_total_size = max_operations, max_value_size, max_total_size
        self.operations = self.built = 0

    def count_operation(self) -> None:
        self.operations += 1
        if self.operations > self.max_operations:
            raise RuleLimitExceeded(
                f"rule stopped: it applies more than {self.max_operations} operators (TRAMA_RULE_MAX_OPERATIONS)"
            )

    def measure(self, operator: str, *values: Any) -> None:
        """Count what ``operator`` builds (``values``), refusing a value or a total over the limits."""
        for value in values:
            _check_number(operator, value)
        left = self.max_total_size - self.built
        size = _size(values, min(self.max_value_size, left))
        if size > self.max_value_size:
            raise RuleLimitExceeded(
                f"rule stopped: {operator!r} would build a value of more than {self.max_value_size} "
                "characters and items (TRAMA_RULE_MAX_VALUE_SIZE)"
            )
        self.built += size
        if self.built > self.max_total_size:
            raise RuleLimitExceeded(
                f"rule stopped: its values would hold more than {self.max_total_size} characters and items "
                "in all (TRAMA_RULE_MAX_TOTAL_SIZE)"
            )


_METER: ContextVar[_Meter] = ContextVar("rule_meter")


def _size(values: tuple, limit: int) -> int:
    """Characters of every string plus items of every list and object in ``values``, nested ones included.

    Shared references count each time they appear (they do when a value is turned into text),
    and counting stops once past ``limit``, so measuring never costs more than the limit.
    """
    total, pending = 0, list(values)
    while pending and total <= limit:
        item = pending.pop()
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, dict):
            total += len(item)
            if total <= limit:
                pending += [*item, *item.values()]
        elif isinstance(item, list | tuple):
            total += len(item)
            if total <= limit:
                pending += item
    return total


def _check_number(operator: str, value: Any) -> None:
    if isinstance(value, bool):
        return
    if isinstance(value, int) and value.bit_length() > MAX_INTEGER_BITS:
        raise RuleLimitExceeded(f"rule stopped: {operator!r} gave an integer of more than {MAX_INTEGER_BITS} bits")
    if isinstance(value, float) and not math.isfinite(value):
        raise RuleError(f"{operator!r} gave {value}, which is not a JSON number")


def _private_json_logic() -> ModuleType:
    """Load a separate instance of ``json_logic`` whose operation tables we may patch.

    The library recurses through its own module-level ``jsonLogic`` and operation
    dicts, so a corrected ``reduce`` only takes effect when installed in those dicts;
    doing that on a private instance keeps the shared module untouched.
    """
    spec = importlib.util.find_spec("json_logic")
    if spec is None or spec.loader is None:
        raise ImportError("json_logic (json-logic-qubit) is not installed")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module._scoped_operations["reduce"] = _make_reduce(module)
    for table in (module._common_operations, module._unsupported_operations):
        for name in set(table) - ALLOWED_OPERATORS:
            del table[name]
    for name in BUILDING_OPERATORS:
        module._common_operations[name] = _measured_first(name, module._common_operations[name])
    # The library recurses through the module's global ``jsonLogic``: every operator goes through the meter.
    module.jsonLogic = _metered(module.jsonLogic, module.is_logic)
    module._expose_operations()
    return module


def _metered(json_logic: Callable, is_logic: Callable) -> Callable:
    """``json_logic`` counting every call and measuring every value an operator builds."""

    def metered_json_logic(logic: Any, data: Any = None) -> Any:
        if not is_logic(logic):
            return json_logic(logic, data)  # a literal, or a list of arguments: each one is metered
        meter = _METER.get()
        meter.count_operation()
        result = json_logic(logic, data)
        operator = next(iter(logic))
        if operator not in PASS_THROUGH_OPERATORS:
            meter.measure(operator, result)
        return result

    return metered_json_logic


def _measured_first(operator: str, build: Callable) -> Callable:
    """``build`` refusing arguments too large to combine, before a single character is copied."""

    def measured(*args: Any) -> Any:
        _METER.get().measure(operator, *args)
        return build(*args)

    return measured


def _make_reduce(module: ModuleType):
    """Return ``reduce`` as JsonLogic specifies it: the initial value is itself a rule."""

    def _reduce(data: Any, scoped_data: Any, scoped_logic: Any, initial: Any = None) -> Any:
        items = module.jsonLogic(scoped_data, data)
        accumulator = module.jsonLogic(initial, data)
        if not isinstance(items, list | tuple):
            return accumulator

        def step(acc: Any, current: Any) -> Any:
            return module.jsonLogic(scoped_logic, {"accumulator": acc, "current": current})

        return reduce(step, items, accumulator)

    return _reduce


_JSON_LOGIC = _private_json_logic()


def rule_problems(rule: Any, path: str) -> list[dict]:
    """Find what would make ``rule`` fail for sure, so definitions are rejected when stored.

    Returns ``[{"path", "message"}]`` for every unknown operator (``path`` is the JSON
    path of the object holding it) and every object that is not a one-key rule.
    Scalars are literals and always valid.
    """
    if isinstance(rule, list):
        return [problem for i, item in enumerate(rule) for problem in rule_problems(item, f"{path}[{i}]")]
    if not isinstance(rule, dict):
        return []
    if len(rule) != 1:
        keys = ", ".join(repr(key) for key in rule)
        return [{"path": path, "message": f"a rule object must have exactly one operator key, got {len(rule)}: {keys}"}]
    ((operator, args),) = rule.items()
    problems = [] if operator in ALLOWED_OPERATORS else [{"path": path, "message": f"unknown operator {operator!r}"}]
    return problems + rule_problems(args, f"{path}.{operator}")


def evaluate(rule: Any, data: Any) -> Any:
    """Evaluate ``rule`` against ``data``; every failure is a :class:`RuleError`, never a silent false.

    The rule is checked first, so a forbidden operator is refused before anything runs.
    The work it may do is bounded by TRAMA_RULE_MAX_OPERATIONS, TRAMA_RULE_MAX_VALUE_SIZE and
    TRAMA_RULE_MAX_TOTAL_SIZE (:class:`RuleLimitExceeded` names the limit reached).
    """
    problems = rule_problems(rule, "rule")
    if problems:
        raise RuleError("; ".join(f"{p['message']} at {p['path']}" for p in problems))
    limits = settings.TRAMA_RULE_MAX_OPERATIONS, settings.TRAMA_RULE_MAX_VALUE_SIZE, settings.TRAMA_RULE_MAX_TOTAL_SIZE
    token = _METER.set(_Meter(*limits))
    try:
        return _JSON_LOGIC.jsonLogic(rule, data)
    except RuleError:
        raise
    except Exception as exc:
        raise RuleError(f"rule raised {type(exc).__name__}: {exc}") from exc
    finally:
        _METER.reset(token)


def holds_as_original(rule: Any, data: Any) -> bool:
    """A rule's truth as the original runtime judges it (JsonLogicEvaluator.evaluateBool in
    saga/workflow/JsonLogicEvaluator.kt, for definitions in its format): a rule that raises is false,
    a number is true unless 0, a string unless empty, null is false, and any list or object is true."""
    try:
        result = evaluate(rule, data)
    except RuleError:
        return False
    if isinstance(result, bool):
        return result
    if isinstance(result, int | float):
        return result != 0
    if isinstance(result, str):
        return result != ""
    return result is not None
