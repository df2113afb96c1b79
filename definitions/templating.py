"""The one place that understands ``{{path}}`` templates (SPEC 2.3).

:func:`template_problems` and :func:`references` run when a definition is stored, so
malformed templates are rejected then; :func:`render` runs when a step is sent and
only has to resolve paths, failing with the path named when one is missing.
"""

import copy
import json
import re
from typing import Any

ROOTS = ("payload", "nodes", "execution", "callback", "secrets")

# A reference (no braces inside), else a lone opening, else a lone closing; tried in that order.
_TOKEN = re.compile(r"\{\{([^{}]*)\}\}|\{\{|\}\}")
_REFERENCE = re.compile(r"\{\{([^{}]*)\}\}")
_PATH = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")
_INDEX = re.compile(r"[0-9]+")


class TemplateError(Exception):
    """A template referenced a path that is not in the data; ``path`` names it."""

    def __init__(self, path: str) -> None:
        super().__init__(f"template reference '{path}' not found")
        self.path = path


def render(value: Any, data: dict) -> Any:
    """Render every string inside ``value`` (dict keys excluded) against ``data``.

    A string that is exactly one reference becomes the referenced value with its JSON
    type; references inside longer strings are rendered as text. Referenced values are
    copied and never rendered again, so data cannot inject templates.
    """
    if isinstance(value, dict):
        return {key: render(item, data) for key, item in value.items()}
    if isinstance(value, list):
        return [render(item, data) for item in value]
    if not isinstance(value, str):
        return value
    whole = _REFERENCE.fullmatch(value)
    if whole:
        return copy.deepcopy(_lookup(data, whole.group(1).strip()))
    return _REFERENCE.sub(lambda match: _as_text(_lookup(data, match.group(1).strip())), value)


def _lookup(data: Any, path: str) -> Any:
    """Follow ``path`` through dicts (by key) and lists (by integer segment)."""
    current = data
    for segment in path.split("."):
        if isinstance(current, dict) and segment in current:
            current = current[segment]
        elif isinstance(current, list) and _INDEX.fullmatch(segment) and int(segment) < len(current):
            current = current[int(segment)]
        else:
            raise TemplateError(path)
    return current


def _as_text(value: Any) -> str:
    """Render a value embedded in a longer string: strings as-is, everything else as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def template_problems(value: Any, path: str) -> list[dict]:
    """List every malformed template in ``value`` as ``{"path", "message"}``.

    ``path`` is the JSON path of ``value``; dict keys extend it with ``.key`` and list
    items with ``[i]``, so each problem points at the string that holds it.
    """
    if isinstance(value, dict):
        return [problem for key, item in value.items() for problem in template_problems(item, f"{path}.{key}")]
    if isinstance(value, list):
        return [problem for i, item in enumerate(value) for problem in template_problems(item, f"{path}[{i}]")]
    if not isinstance(value, str):
        return []
    return [{"path": path, "message": message} for message in _string_problems(value)]


def _string_problems(text: str) -> list[str]:
    """Messages for each malformed template token in one string."""
    messages = []
    for match in _TOKEN.finditer(text):
        if match.group(1) is not None:
            messages += _reference_problems(match.group(1).strip())
        elif match.group(0) == "{{":
            messages.append(f"unclosed '{{{{' in {text!r}")
        else:
            messages.append(f"stray '}}}}' in {text!r}")
    return messages


def _reference_problems(reference: str) -> list[str]:
    """Messages for one ``{{...}}`` body: empty, bad path syntax, unknown root, bare ``secrets``."""
    if not reference:
        return ["empty template reference '{{ }}'"]
    if not _PATH.fullmatch(reference):
        what = "empty path segment" if "" in reference.split(".") else "illegal characters"
        return [f"{what} in template reference {reference!r}"]
    segments = reference.split(".")
    if segments[0] not in ROOTS:
        return [f"unknown template root {segments[0]!r} in {reference!r} (expected one of {', '.join(ROOTS)})"]
    if segments[0] == "secrets" and len(segments) != 2:
        return [f"template reference {reference!r} must name exactly one secret: secrets.<NAME>"]
    return []


def references(value: Any) -> list[str]:
    """Every well-formed reference path in ``value``, in order, without duplicates.

    Used by validation to check that ``nodes.<id>`` names a real node; malformed
    references are reported by :func:`template_problems` instead.
    """
    if isinstance(value, dict):
        found = [ref for item in value.values() for ref in references(item)]
    elif isinstance(value, list):
        found = [ref for item in value for ref in references(item)]
    elif isinstance(value, str):
        found = [m.group(1).strip() for m in _REFERENCE.finditer(value) if _PATH.fullmatch(m.group(1).strip())]
    else:
        found = []
    return list(dict.fromkeys(found))
