"""The problem collector and the small typed readers every part of validation shares.

Validation never stops at the first problem: each reader records what is wrong
with its field (at the field's JSON path) and returns ``None``, and the caller
carries on with the next field. Paths follow SPEC 2.4: dotted keys, ``[i]`` for
list items (``nodes.route.cases[0].next``).
"""

import math
from typing import Any

from trama_project.jsonvalues import type_name

MISSING = object()


class Problems:
    """Collects ``{"path", "message"}`` items in the order they are found."""

    def __init__(self) -> None:
        self.items: list[dict] = []

    def add(self, path: str, message: str) -> None:
        self.items.append({"path": path, "message": message})

    def extend(self, items: list[dict]) -> None:
        self.items.extend(items)

    def __len__(self) -> int:
        return len(self.items)


def join(path: str, key: str) -> str:
    """The path of ``key`` inside the object at ``path``."""
    return f"{path}.{key}" if path else key


def label(path: str) -> str:
    """The last component of a path, used to name the field in messages."""
    return path.rsplit(".", 1)[-1] or "definition"


def expect_object(value: Any, path: str, problems: Problems) -> dict | None:
    if isinstance(value, dict):
        return value
    problems.add(path, f"{label(path)} must be an object, got {type_name(value)}")
    return None


def check_keys(obj: dict, path: str, allowed: set[str], problems: Problems, required: tuple = ()) -> None:
    """Report every key of ``obj`` not in ``allowed`` and every ``required`` key that is absent."""
    for key in obj:
        if key not in allowed:
            problems.add(join(path, str(key)), f"unknown field '{key}'")
    for key in required:
        if key not in obj:
            problems.add(join(path, key), f"{key} is required")


def read_string(obj: dict, key: str, path: str, problems: Problems, default: Any = MISSING) -> Any:
    """The non-blank string at ``obj[key]``; ``default`` when absent (``MISSING`` makes it required)."""
    where = join(path, key)
    if key not in obj:
        if default is MISSING:
            problems.add(where, f"{key} is required")
            return None
        return default
    value = obj[key]
    if not isinstance(value, str):
        problems.add(where, f"{key} must be a string, got {type_name(value)}")
        return None
    if not value.strip():
        problems.add(where, f"{key} must not be blank")
        return None
    return value


def read_number(obj: dict, key: str, path: str, problems: Problems, bounds: tuple, default: Any) -> Any:
    """The number at ``obj[key]`` within ``bounds`` = (low, high, low_inclusive), as float.

    Absent or null gives ``default``. Booleans are not numbers here.
    """
    value = obj.get(key)
    if value is None:
        return default
    where = join(path, key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not _finite(value):
        problems.add(where, f"{key} must be a number, got {type_name(value)}")
        return None
    low, high, low_inclusive = bounds
    if value < low or (value == low and not low_inclusive):
        low_text = "at least" if low_inclusive else "greater than"
        problems.add(where, f"{key} must be {low_text} {low:g}, got {_number_text(value)}")
        return None
    if value > high:
        problems.add(where, f"{key} must be at most {high:g}, got {_number_text(value)}")
        return None
    return float(value)


def _finite(value: int | float) -> bool:
    """An int is always finite (``math.isfinite`` overflows on ints beyond a float's range)."""
    return isinstance(value, int) or math.isfinite(value)


def _number_text(value: int | float) -> str:
    """A number for a message; an int beyond a float's range (JSON allows it) is shortened, not converted."""
    try:
        return f"{value:g}"
    except OverflowError:
        text = str(value)
        return f"{text[:12]}...({len(text)} digits)"


def read_integer(obj: dict, key: str, path: str, problems: Problems, bounds: tuple, default: Any) -> Any:
    """The integer at ``obj[key]`` within the inclusive ``bounds`` = (low, high); ``default`` when absent."""
    value = obj.get(key)
    if value is None:
        return default
    where = join(path, key)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        problems.add(where, f"{key} must be an integer, got {type_name(value)}")
        return None
    low, high = bounds
    if not low <= value <= high:
        problems.add(where, f"{key} must be between {low} and {high}, got {value}")
        return None
    return value
