"""JSON value helpers shared by the API's parser (trama_project/api.py) and definition validation.

Here, below every app, so that the project's API layer needs nothing of the apps.
"""

from typing import Any


def nesting_depth(value: Any, limit: int) -> int:
    """How deeply lists and objects nest in ``value``, counting up to ``limit + 1`` at most.

    Iterative on purpose: it guards the recursive walkers (templates, rules, JSON
    rendering) against a body nested deeply enough to exhaust the stack.
    """
    deepest, stack = 0, [(value, 1)]
    while stack and deepest <= limit:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def type_name(value: Any) -> str:
    """How a JSON value's type is called in messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "list", dict: "object"}.get(type(value), type(value).__name__)
