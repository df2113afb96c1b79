"""The one place that understands ``{{path}}`` templates (SPEC 2.3).

:func:`template_problems` and :func:`references` run when a definition is stored, so
malformed templates are rejected then; :func:`render` runs when a step is sent and
only has to resolve paths, failing with the path named when one is missing.
"""

import copy
import json
import re
from decimal import Decimal
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


def render(value: Any, data: dict, dialect: Any = None) -> Any:
    """Render every string inside ``value`` (dict keys excluded) against ``data``.

    A string that is exactly one reference becomes the referenced value with its JSON
    type; references inside longer strings are rendered as text. Referenced values are
    copied and never rendered again, so data cannot inject templates. A definition in
    the original's ``dialect`` is rendered by its rules instead (:func:`render_original`).
    """
    if is_original(dialect):
        return render_original(value, data)
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


_MISSING = object()


def _walk(data: Any, path: str) -> Any:
    """Follow ``path`` through dicts (by key) and lists (by integer segment); _MISSING where it leads nowhere."""
    current = data
    for segment in path.split("."):
        if isinstance(current, dict) and segment in current:
            current = current[segment]
        elif isinstance(current, list) and _INDEX.fullmatch(segment) and int(segment) < len(current):
            current = current[int(segment)]
        else:
            return _MISSING
    return current


def _lookup(data: Any, path: str) -> Any:
    """The value at ``path``; a missing one fails the render (TemplateError), as native templates do."""
    found = _walk(data, path)
    if found is _MISSING:
        raise TemplateError(path)
    return found


def _as_text(value: Any) -> str:
    """Render a value embedded in a longer string: strings as-is, everything else as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def template_problems(value: Any, path: str, dialect: Any = None) -> list[dict]:
    """List every malformed template in ``value`` as ``{"path", "message"}``.

    ``path`` is the JSON path of ``value``; dict keys extend it with ``.key`` and list
    items with ``[i]``, so each problem points at the string that holds it.
    """
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in template_problems(item, f"{path}.{key}", dialect)]
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in template_problems(item, f"{path}[{i}]", dialect)]
    if not isinstance(value, str):
        return []
    messages = original_problems(value) if is_original(dialect) else _string_problems(value)
    return [{"path": path, "message": message} for message in messages]


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


def references(value: Any, dialect: Any = None) -> list[str]:
    """Every well-formed reference path in ``value``, in order, without duplicates.

    Used by validation to check that ``nodes.<id>`` names a real node; malformed
    references are reported by :func:`template_problems` instead.
    """
    if isinstance(value, dict):
        found = [ref for item in value.values() for ref in references(item, dialect)]
    elif isinstance(value, list):
        found = [ref for item in value for ref in references(item, dialect)]
    elif isinstance(value, str) and is_original(dialect):
        found = [name for name in original_references(value) if _PATH.fullmatch(name)]
    elif isinstance(value, str):
        found = [m.group(1).strip() for m in _REFERENCE.finditer(value) if _PATH.fullmatch(m.group(1).strip())]
    else:
        found = []
    return list(dict.fromkeys(found))


# --- The original runtime's language (definitions in its format, SPEC 2.2) ----------------------
# The original (github.com/thiagoribeiro/trama) renders every template with mustache.java
# (saga/TemplateRenderer.kt): each value is text (Java's toString), HTML-escaped unless written
# {{{x}}} or {{& x}}, and a missing reference renders as empty text. A converted definition says
# so in its ``dialect`` (definitions/upstream.py writes it); :func:`render` then follows these rules.

DIALECTS = ("trama-v1", "trama-v2")
# TemplateContextBuilder.build (saga/TemplateRenderer.kt), plus runtime.callback for async calls (TaskNodeHandler.kt).
ORIGINAL_ROOTS = ("payload", "nodes", "step", "steps", "prev", "sagaId", "sagaName", "sagaVersion", "stepName", "phase",
                  "runtime")  # fmt: skip
# Mustache tags: {{{x}}}, then {{x}} with an optional sigil (& # ^ / ! > =).
MUSTACHE = re.compile(r"\{\{\{([^{}]*)\}\}\}|\{\{([&#^/!>=]?)([^{}]*)\}\}")
# mustache.java's HtmlEscaper: these characters, and every character up to 13 as &#N;.
_HTML_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;", "`": "&#96;", "=": "&#61;"}
_HTML_ESCAPES |= {chr(code): f"&#{code};" for code in range(14)}
_HTML_SPECIAL = re.compile("[" + re.escape("".join(_HTML_ESCAPES)) + "]")


def is_original(dialect: Any) -> bool:
    """Whether ``dialect`` (a spec's ``dialect`` field) names the original runtime's language."""
    return isinstance(dialect, dict) and dialect.get("name") in DIALECTS


def render_original(value: Any, data: dict) -> Any:
    """Render every string inside ``value`` as the original does: always to text, never failing."""
    if isinstance(value, dict):
        return {key: render_original(item, data) for key, item in value.items()}
    if isinstance(value, list):
        return [render_original(item, data) for item in value]
    if not isinstance(value, str):
        return value
    return MUSTACHE.sub(lambda match: _original_tag(match, data), value)


def _original_tag(match: re.Match, data: dict) -> str:
    if match.group(1) is not None:
        return java_text(_find(data, match.group(1).strip()))
    sigil, name = match.group(2), match.group(3).strip()
    if sigil == "!":
        return ""  # a comment
    if sigil not in ("", "&"):
        return match.group(0)  # sections and partials are refused when the definition is stored
    text = java_text(_find(data, name))
    return _HTML_SPECIAL.sub(lambda char: _HTML_ESCAPES[char.group(0)], text) if sigil == "" else text


def _find(data: Any, name: str) -> Any:
    """mustache.java's dotted lookup: a missing segment anywhere is no value (rendered empty)."""
    found = _walk(data, name)
    return None if found is _MISSING else found


def java_text(value: Any) -> str:
    """``value`` as the original writes it: Java's toString of what its JSON becomes (JsonElementUtils.kt
    ``toAny``): strings as is, maps ``{k=v, ...}``, lists ``[a, b]``, doubles ``1.5`` / ``1.0E7``, null empty."""
    return "" if value is None else _java_string(value)


def _java_string(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _java_double(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}={_java_string(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_java_string(item) for item in value) + "]"
    return str(value)


def _java_double(value: float) -> str:
    """Double.toString: plain between 10^-3 and 10^7, else ``d.dddE±n``."""
    if value == 0 or 1e-3 <= abs(value) < 1e7 or value != value or value in (float("inf"), float("-inf")):
        return repr(value).replace("inf", "Infinity").replace("nan", "NaN")
    sign, digits, _ = Decimal(repr(value)).as_tuple()
    text = "".join(map(str, digits)).rstrip("0") or "0"
    mantissa = f"{text[0]}.{text[1:] or '0'}"
    return f"{'-' if sign else ''}{mantissa}E{Decimal(repr(value)).adjusted()}"


def original_problems(text: str) -> list[str]:
    """Messages for each tag of ``text`` the original's templates may not hold (sections, partials...),
    and for each reference it would render as empty text: a typo there must not pass silently."""
    messages = []
    for match in MUSTACHE.finditer(text):
        if match.group(1) is None and match.group(2) not in ("", "&", "!"):
            messages.append(f"Mustache tag '{match.group(0)}' is not supported yet (only {{{{name}}}} references are)")
        elif match.group(2) != "!":
            name = (match.group(1) if match.group(1) is not None else match.group(3)).strip()
            messages += _original_reference_problems(name)
    return messages


def _original_reference_problems(name: str) -> list[str]:
    if not _PATH.fullmatch(name):
        return [f"template reference {name!r} is not a dotted name"]
    parts = name.split(".")
    if parts[0] not in ORIGINAL_ROOTS:
        return [
            f"template reference {name!r} is not in the original's template context (it renders as empty text "
            f"there); references start with {', '.join(ORIGINAL_ROOTS)}"
        ]
    if parts[0] == "nodes" and parts[2:4] != ["response", "body"]:
        return [f"template reference {name!r} renders as empty text in the original (it has nodes.<id>.response.body)"]
    return []


def original_references(text: str) -> list[str]:
    """The names referenced by ``text`` in the original's language, in order."""
    return [
        (m.group(1) if m.group(1) is not None else m.group(3)).strip()
        for m in MUSTACHE.finditer(text)
        if m.group(1) is not None or m.group(2) in ("", "&")
    ]
