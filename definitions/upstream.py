"""Upstream-style definitions (SPEC 2.2): the JSON of the original Trama runtime, converted to Trama's own form.

Two shapes are recognised (the field-by-field mapping is in docs/upstream.md):

* v1, a linear saga: ``{"name", "failureHandling", "steps": [{"name", "up", "down", "retry"}]}``;
* v2, a node graph: ``{"name", "entrypoint", "nodes": [{"id", "kind": "task"|"switch"|"sleep", ...}]}``.

:func:`convert` only renames, restructures and converts units (milliseconds to
seconds, Mustache references to Trama's, simple switch expressions to JSON
Logic); values are left to the normal validation, whose errors
:meth:`Conversion.translate` points back at the upstream paths. The stored
``source`` stays the upstream JSON; only the ``spec`` is Trama's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

V1_FIELDS = {"name", "description", "version", "failureHandling", "steps"}
V1_STEP_FIELDS = {"name", "up", "down", "retry"}
V2_FIELDS = {"name", "description", "version", "entrypoint", "nodes"}
V2_FIELDS_BY_KIND = {
    "task": {"id", "kind", "action", "compensation", "retry", "callback", "onFailure", "onTimeout", "next"},
    "switch": {"id", "kind", "cases", "default"},
    "sleep": {"id", "kind", "durationMillis", "next"},
}
REQUEST_FIELDS = {"method", "url", "headers", "query", "body", "timeoutMillis", "acceptedStatusCodes"}
ACTION_FIELDS = REQUEST_FIELDS | {"mode"}
MODES = {"sync": "task", "async": "async_task"}
CALLBACK_FIELDS = {"timeoutMillis": "timeout_s", "heartbeatMillis": "heartbeat_s"}
CALLBACK_RULES = {"successWhen": "success_when", "failureWhen": "failure_when"}
# upstream key -> (Trama key, divide by 1000?)
RETRY_FIELDS = {
    "maxAttempts": ("max_attempts", False),
    "backoffMillis": ("backoff_s", True),
    "multiplier": ("multiplier", False),
    "maxBackoffMillis": ("max_backoff_s", True),
    "retryOn": ("retry_on", False),
}
FAILURE_HANDLING = {"compensate": "compensate", "abort": "fail"}
# Mustache reference prefixes of the upstream runtime and what they read in Trama.
REFERENCE_PREFIXES = (("runtime.callback.", "callback."), ("runtime.execution.", "execution."), ("steps.", "nodes."))
_TRIPLE = re.compile(r"\{\{\{([^{}]*)\}\}\}")
_REFERENCE = re.compile(r"\{\{([^{}]*)\}\}")


def is_upstream(source: Any) -> bool:
    """Whether ``source`` is an upstream-style definition (it has no ``kind``, and upstream markers)."""
    if not isinstance(source, dict) or "kind" in source:
        return False
    if "entrypoint" in source or "failureHandling" in source or isinstance(source.get("nodes"), list):
        return True
    steps = source.get("steps")
    return isinstance(steps, list) and any(isinstance(s, dict) and ("up" in s or "down" in s) for s in steps)


def validate_upstream(source: dict, validate: Callable[[Any], Any]) -> tuple[dict | None, list[dict]]:
    """Convert, then check with ``validate`` (definitions.validation.validate_definition); (spec, errors)."""
    conversion = convert(source)
    result = validate(conversion.source)
    errors = conversion.problems + conversion.translate(result.errors)
    return (None if errors else result.spec), errors


@dataclass
class Conversion:
    """The Trama-form ``source``, the upstream-only ``problems``, and Trama path prefix -> upstream path."""

    source: dict
    problems: list[dict] = field(default_factory=list)
    paths: dict[str, str] = field(default_factory=dict)

    def add(self, path: str, message: str) -> None:
        self.problems.append({"path": path, "message": message})

    def unknown_keys(self, obj: dict, path: str, allowed: set[str]) -> None:
        for key in obj:
            if key not in allowed:
                self.add(f"{path}.{key}" if path else key, f"unknown field '{key}'")

    def translate(self, errors: list[dict]) -> list[dict]:
        """Point each validation error of the converted definition at the upstream field it came from."""
        return [self._translated(error) for error in errors]

    def _translated(self, error: dict) -> dict:
        native = error["path"]
        prefix = max((p for p in self.paths if _under(native, p)), key=len, default=None)
        if prefix is None:
            return {"path": native, "message": f"in the converted definition: {error['message']}"}
        upstream = self.paths[prefix] + native[len(prefix) :]
        message = error["message"]
        native_key = _last_key(native)
        if native_key != _last_key(upstream) and native_key in message:  # the message names Trama's field
            message = f"{message} (checked as {native} after conversion)"
        return {"path": upstream, "message": message}


def _under(path: str, prefix: str) -> bool:
    return path == prefix or prefix == "" or path.startswith((prefix + ".", prefix + "["))


def _last_key(path: str) -> str:
    return re.split(r"[.\[]", path)[-1]


def convert(source: dict) -> Conversion:
    """The Trama-form equivalent of an upstream ``source`` (see :func:`is_upstream`)."""
    if "entrypoint" in source or isinstance(source.get("nodes"), list):
        return _convert_v2(source)
    return _convert_v1(source)


def _top(source: dict, conv: Conversion, kind: str, allowed: set[str]) -> None:
    conv.unknown_keys(source, "", allowed)
    conv.source["kind"] = kind
    for key in ("name", "description"):
        if key in source:
            conv.source[key] = source[key]
    conv.paths.update({"": "", "name": "name", "description": "description"})


# --- v1: a linear saga -----------------------------------------------------------------------


def _convert_v1(source: dict) -> Conversion:
    conv = Conversion({})
    _top(source, conv, "saga", V1_FIELDS)
    handling = source.get("failureHandling", "compensate")
    if handling not in FAILURE_HANDLING:
        conv.add("failureHandling", f"failureHandling must be 'compensate' or 'abort', got {handling!r}")
        handling = "compensate"
    steps = source.get("steps")
    conv.paths["steps"] = "steps"
    if not isinstance(steps, list):
        if "steps" in source:
            conv.source["steps"] = steps  # validation reports the type
        return conv
    conv.source["steps"] = [_v1_step(step, i, conv, FAILURE_HANDLING[handling]) for i, step in enumerate(steps)]
    return conv


def _v1_step(step: Any, index: int, conv: Conversion, on_failure: str) -> Any:
    path = f"steps[{index}]"
    if not isinstance(step, dict):
        return step
    conv.unknown_keys(step, path, V1_STEP_FIELDS)
    node: dict[str, Any] = {}
    if "name" in step:
        node["id"] = step["name"]
    conv.paths[f"{path}.id"] = f"{path}.name"
    if "up" in step:
        node["request"] = _request(step["up"], f"{path}.request", f"{path}.up", REQUEST_FIELDS, conv)
    conv.paths[f"{path}.request"] = f"{path}.up"
    if "down" in step:
        node["compensation"] = _request(step["down"], f"{path}.compensation", f"{path}.down", REQUEST_FIELDS, conv)
    if "retry" in step:
        node["retry"] = _retry(step["retry"], f"{path}.retry", conv)
    if on_failure != "compensate":
        node["on_failure"] = on_failure
        conv.paths[f"{path}.on_failure"] = "failureHandling"
    return node


# --- v2: a node graph ------------------------------------------------------------------------


def _convert_v2(source: dict) -> Conversion:
    conv = Conversion({})
    _top(source, conv, "graph", V2_FIELDS)
    if "entrypoint" in source:
        conv.source["start"] = source["entrypoint"]
    conv.paths["start"] = "entrypoint"
    conv.paths["nodes"] = "nodes"
    nodes = source.get("nodes")
    if not isinstance(nodes, list):
        conv.add("nodes", "nodes must be a list of nodes, each with an id")
        return conv
    conv.source["nodes"] = {}
    for index, raw in enumerate(nodes):
        _v2_node(raw, index, conv)
    return conv


def _v2_node(raw: Any, index: int, conv: Conversion) -> None:
    path = f"nodes[{index}]"
    if not isinstance(raw, dict):
        conv.add(path, "a node must be an object")
        return
    node_id = raw.get("id")
    if not isinstance(node_id, str) or not node_id:
        conv.add(f"{path}.id", "id is required (a string)")
        return
    if node_id in conv.source["nodes"]:
        conv.add(f"{path}.id", f"duplicate node id '{node_id}'")
        return
    native_path = f"nodes.{node_id}"
    conv.paths |= {native_path: path, f"{native_path}.type": f"{path}.kind"}
    kind = raw.get("kind")
    if kind not in V2_FIELDS_BY_KIND:
        conv.add(f"{path}.kind", f"unknown kind {kind!r} (expected task, switch or sleep)")
        return
    conv.unknown_keys(raw, path, V2_FIELDS_BY_KIND[kind])
    convert_kind = {"task": _v2_task, "switch": _v2_switch, "sleep": _v2_sleep}[kind]
    conv.source["nodes"][node_id] = convert_kind(raw, native_path, path, conv)


def _v2_task(raw: dict, native: str, path: str, conv: Conversion) -> dict:
    action = raw.get("action")
    mode = action.get("mode", "sync") if isinstance(action, dict) else "sync"
    if mode not in MODES:
        conv.add(f"{path}.action.mode", f"mode must be 'sync' or 'async', got {mode!r}")
        mode = "sync"
    node: dict[str, Any] = {"type": MODES[mode]}
    if "action" in raw:
        node["request"] = _request(action, f"{native}.request", f"{path}.action", ACTION_FIELDS, conv)
    conv.paths[f"{native}.request"] = f"{path}.action"
    if "compensation" in raw:
        where = f"{path}.compensation"
        node["compensation"] = _request(raw["compensation"], f"{native}.compensation", where, REQUEST_FIELDS, conv)
    if "retry" in raw:
        node["retry"] = _retry(raw["retry"], f"{native}.retry", conv, f"{path}.retry")
    for upstream_key, key in (("onFailure", "on_failure"), ("onTimeout", "on_timeout"), ("next", "next")):
        if upstream_key in raw:
            value = raw[upstream_key]
            node[key] = "fail" if value == "abort" and key != "next" else value
            conv.paths[f"{native}.{key}"] = f"{path}.{upstream_key}"
    if "callback" in raw:
        _v2_callback(raw["callback"], node, native, path, conv)
    return node


def _v2_callback(callback: Any, node: dict, native: str, path: str, conv: Conversion) -> None:
    where = f"{path}.callback"
    if node["type"] != "async_task":
        conv.add(where, "callback needs action.mode 'async'")
        return
    if not isinstance(callback, dict):
        conv.add(where, "callback must be an object")
        return
    conv.unknown_keys(callback, where, set(CALLBACK_FIELDS) | set(CALLBACK_RULES))
    for upstream_key, key in CALLBACK_FIELDS.items():
        if upstream_key in callback:
            node[key] = _seconds(callback[upstream_key])
            conv.paths[f"{native}.{key}"] = f"{where}.{upstream_key}"
    rules = {key: callback[up] for up, key in CALLBACK_RULES.items() if up in callback}
    if rules:
        node["callback"] = rules
        conv.paths |= {f"{native}.callback.{key}": f"{where}.{up}" for up, key in CALLBACK_RULES.items()}


def _v2_switch(raw: dict, native: str, path: str, conv: Conversion) -> dict:
    node: dict[str, Any] = {"type": "switch"}
    if "default" in raw:
        node["default"] = raw["default"]
    cases = raw.get("cases")
    if not isinstance(cases, list):
        if "cases" in raw:
            node["cases"] = cases  # validation reports the type
        return node
    node["cases"] = [_v2_case(case, f"{native}.cases[{i}]", f"{path}.cases[{i}]", conv) for i, case in enumerate(cases)]
    return node


def _v2_case(case: Any, native: str, path: str, conv: Conversion) -> Any:
    if not isinstance(case, dict):
        return case
    conv.unknown_keys(case, path, {"condition", "target"})
    conv.paths |= {f"{native}.when": f"{path}.condition", f"{native}.next": f"{path}.target"}
    converted: dict[str, Any] = {}
    if "target" in case:
        converted["next"] = case["target"]
    if "condition" not in case:
        return converted  # validation reports the missing rule (at .condition)
    condition = case["condition"]
    if isinstance(condition, str):
        try:
            condition = expression_rule(condition)
        except ValueError as exc:
            conv.add(f"{path}.condition", str(exc))
            condition = True
    converted["when"] = condition
    return converted


def _v2_sleep(raw: dict, native: str, path: str, conv: Conversion) -> dict:
    node: dict[str, Any] = {"type": "sleep"}
    if "durationMillis" in raw:
        node["duration_s"] = _seconds(raw["durationMillis"])
    conv.paths[f"{native}.duration_s"] = f"{path}.durationMillis"
    if "next" in raw:
        node["next"] = raw["next"]
    return node


# --- Shared pieces ---------------------------------------------------------------------------


def _request(raw: Any, native: str, path: str, allowed: set[str], conv: Conversion) -> Any:
    """An upstream request (``up``, ``down``, ``action``, ``compensation``) in Trama's form."""
    conv.paths[native] = path
    if not isinstance(raw, dict):
        return raw  # validation reports the type
    conv.unknown_keys(raw, path, allowed)
    request = {key: mustache(raw[key]) for key in ("method", "url", "headers", "query", "body") if key in raw}
    if "timeoutMillis" in raw:
        request["timeout_s"] = _seconds(raw["timeoutMillis"])
    if "acceptedStatusCodes" in raw:
        request["success_status"] = raw["acceptedStatusCodes"]
    conv.paths |= {
        f"{native}.timeout_s": f"{path}.timeoutMillis",
        f"{native}.success_status": f"{path}.acceptedStatusCodes",
    }
    return request


def _retry(raw: Any, native: str, conv: Conversion, path: str | None = None) -> Any:
    path = path or native
    conv.paths[native] = path
    if not isinstance(raw, dict):
        return raw
    conv.unknown_keys(raw, path, set(RETRY_FIELDS))
    retry = {}
    for upstream_key, (key, millis) in RETRY_FIELDS.items():
        if upstream_key in raw:
            retry[key] = _seconds(raw[upstream_key]) if millis else raw[upstream_key]
        conv.paths[f"{native}.{key}"] = f"{path}.{upstream_key}"
    return retry


def _seconds(millis: Any) -> Any:
    """Milliseconds as seconds; anything but a number is passed on for validation to report."""
    if isinstance(millis, bool) or not isinstance(millis, int | float):
        return millis
    return millis / 1000


def mustache(value: Any) -> Any:
    """Rewrite upstream Mustache references in every string of ``value`` to Trama templates.

    ``{{{x}}}`` (Mustache's unescaped form) becomes ``{{x}}``; ``runtime.callback.*``
    reads ``callback.*``, ``runtime.execution.*`` reads ``execution.*``, ``steps.<name>.*``
    reads ``nodes.<name>.*``. Everything else (``payload.*``, ``nodes.*``) is the same.
    """
    if isinstance(value, dict):
        return {key: mustache(item) for key, item in value.items()}
    if isinstance(value, list):
        return [mustache(item) for item in value]
    if not isinstance(value, str):
        return value
    value = _TRIPLE.sub(r"{{\1}}", value)
    return _REFERENCE.sub(lambda m: "{{" + reference(m.group(1).strip()) + "}}", value)


def reference(path: str) -> str:
    """One upstream reference path in Trama's terms (see :func:`mustache`)."""
    for old, new in REFERENCE_PREFIXES:
        if path.startswith(old):
            return new + path[len(old) :]
    return path


# --- Simple switch expressions ----------------------------------------------------------------

_EXPRESSION_TOKEN = re.compile(
    r"""\s*(?:(?P<string>'[^']*'|"[^"]*")|(?P<number>-?\d+(?:\.\d+)?(?![\w.]))|"""
    r"""(?P<op>===|!==|==|!=|>=|<=|>|<|&&|\|\||!)|"""
    r"""(?P<word>\{\{\s*[A-Za-z_][\w.-]*\s*\}\}|[A-Za-z_][\w.-]*))"""
)
COMPARISONS = {"==", "===", "!=", "!==", ">", ">=", "<", "<="}
LITERALS = {"true": True, "false": False, "null": None}


def expression_rule(text: str) -> Any:
    """A simple upstream switch condition as a JSON Logic rule; ValueError when it cannot be read.

    Grammar: ``a || b``, ``a && b`` (``&&`` binds tighter), comparisons ``path op value``
    with ``== != === !== > >= < <=``, ``!path``, or a bare path (truthy). Operands are
    paths (``payload.method``, optionally in ``{{ }}``), numbers, quoted strings,
    ``true``, ``false``, ``null``. No parentheses.
    """
    tokens = _tokens(text)
    if not tokens:
        raise ValueError("condition must not be empty")
    return _disjunction(tokens, text)


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    while position < len(text.rstrip()):
        match = _EXPRESSION_TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise ValueError(f"cannot read condition {text!r} at {text[position:].strip()!r}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


def _split(tokens: list, operator: str) -> list[list]:
    parts, current = [], []
    for token in tokens:
        if token == ("op", operator):
            parts.append(current)
            current = []
        else:
            current.append(token)
    return [*parts, current]


def _disjunction(tokens: list, text: str) -> Any:
    parts = [_conjunction(part, text) for part in _split(tokens, "||")]
    return parts[0] if len(parts) == 1 else {"or": parts}


def _conjunction(tokens: list, text: str) -> Any:
    parts = [_comparison(part, text) for part in _split(tokens, "&&")]
    return parts[0] if len(parts) == 1 else {"and": parts}


def _comparison(tokens: list, text: str) -> Any:
    if len(tokens) == 1:
        return {"!!": [_operand(tokens[0], text)]}
    if len(tokens) == 2 and tokens[0] == ("op", "!"):
        return {"!": [_operand(tokens[1], text)]}
    if len(tokens) == 3 and tokens[1][0] == "op" and tokens[1][1] in COMPARISONS:
        return {tokens[1][1]: [_operand(tokens[0], text), _operand(tokens[2], text)]}
    raise ValueError(f"cannot read condition {text!r}: expected 'path op value', '!path' or 'path'")


def _operand(token: tuple[str, str], text: str) -> Any:
    kind, value = token
    if kind == "string":
        return value[1:-1]
    if kind == "number":
        return float(value) if "." in value else int(value)
    if kind == "word" and value in LITERALS:
        return LITERALS[value]
    if kind == "word":
        return {"var": reference(value.strip("{} \t"))}
    raise ValueError(f"cannot read condition {text!r}: unexpected {value!r}")
