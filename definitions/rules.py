"""The one place that evaluates JSON Logic rules (switch cases, callback outcomes).

Built on the ``json_logic`` library (json-logic-qubit), with three corrections that
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
  fails its node with the error recorded instead of looking like ``false``.

The fixes live in a private copy of the library module, so the globally imported
``json_logic`` that other code may use is left exactly as it was.
"""

import importlib.util
from functools import reduce
from types import ModuleType
from typing import Any

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


class RuleError(Exception):
    """A rule is invalid or raised while evaluating; the message says what went wrong."""


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
    module._expose_operations()
    return module


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
    """
    problems = rule_problems(rule, "rule")
    if problems:
        raise RuleError("; ".join(f"{p['message']} at {p['path']}" for p in problems))
    try:
        return _JSON_LOGIC.jsonLogic(rule, data)
    except Exception as exc:
        raise RuleError(f"rule raised {type(exc).__name__}: {exc}") from exc
