"""Definitions in the original Trama runtime's format (SPEC 2.2), converted to Trama's own form.

The original (github.com/thiagoribeiro/trama) defines two formats in
``app/main/kotlin/run/trama/saga/SagaDefinition.kt``:

* v1, ``SagaDefinition``: ``{name, version, failureHandling, steps: [{name, up, down}],
  onSuccessCallback?, onFailureCallback?}``;
* v2, ``SagaDefinitionV2``: ``{name, version, failureHandling, entrypoint, nodes: [{kind, id, ...}],
  onSuccessCallback?, onFailureCallback?}`` (a body with ``nodes`` is v2, as in its ``Application.kt``).

:func:`convert` builds the native definition field by field (docs/upstream.md is the
table), with the original's defaults made explicit (its per-verb success codes, the
202 an async call is accepted with, completion callbacks sent once). Problems only
the original's format can have (its field names, types and required fields) are
reported here; values are then checked by the normal validation, whose errors
:meth:`Conversion.translate` points back at the field the author wrote. A feature of
the original with no native counterpart yet is refused, naming the field, never dropped.
The stored ``source`` stays the original JSON; only the ``spec`` is Trama's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from trama_project.jsonvalues import nesting_depth, type_name

TOP_FIELDS = {"name", "version", "failureHandling", "onSuccessCallback", "onFailureCallback"}
V1_FIELDS = TOP_FIELDS | {"steps"}
V2_FIELDS = TOP_FIELDS | {"entrypoint", "nodes"}
STEP_FIELDS = {"name", "up", "down"}
HTTP_CALL_FIELDS = {"url", "verb", "headers", "body", "successStatusCodes"}
NODE_FIELDS = {
    "task": {"kind", "id", "action", "compensation", "next"},
    "switch": {"kind", "id", "cases", "default"},
    "sleep": {"kind", "id", "durationMillis", "next"},
}
ACTION_FIELDS = {"mode", "request", "successStatusCodes", "acceptedStatusCodes", "callback"}
CASE_FIELDS = {"name", "when", "target"}
CALLBACK_FIELDS = {"timeoutMillis", "successWhen", "failureWhen"}
FAILURE_HANDLING_FIELDS = {
    "retry": {"type", "maxAttempts", "delayMillis"},
    "backoff": {"type", "maxAttempts", "initialDelayMillis", "maxDelayMillis", "multiplier", "jitterRatio"},
}
# SagaDefinition.kt, defaultSuccessStatusCodes(verb).
SUCCESS_BY_VERB = {
    "GET": [200],
    "HEAD": [200],
    "OPTIONS": [200],
    "POST": [200, 201, 202],
    "PUT": [200, 202, 204],
    "PATCH": [200, 202, 204],
    "DELETE": [200, 202, 204],
}
# TaskNodeHandler.kt: an async call is accepted with acceptedStatusCodes ?: setOf(202).
ASYNC_ACCEPTED = [202]
# WorkflowExecutor.kt retries every failed call (any status not in the success codes, or no answer),
# and an async call whose callback never came (executeWaitingCallback).
RETRY_ON_EVERYTHING = ["network", "timeout", "1xx", "2xx", "3xx", "4xx", "5xx", "callback_timeout"]
# application.yaml, httpClient.requestTimeoutMillis: one timeout for every call.
REQUEST_TIMEOUT_S = 30
MAX_RETRIES = 99  # Trama's max_attempts (calls, 1-100) is the original's maxAttempts (retries) + 1
NOT_SUPPORTED = "is not supported yet"
# The data the original's rules read: switch cases (SwitchNodeHandler.kt), callback rules (CallbackReceiver.kt).
# `input` reads nothing at run time either, but its dry run (cli/DryRunSimulator.kt) aliases it to the payload
# and the definitions it ships use it: accepted.
SWITCH_RULE_ROOTS = ("payload", "nodes", "step", "prev", "input")
CALLBACK_RULE_ROOTS = ("input", "callback")
MAX_DEPTH = 64  # as definitions.validation.MAX_DEPTH


def is_upstream(source: Any) -> bool:
    """Whether ``source`` is in the original's format: no ``kind``, and a field only the original has."""
    if not isinstance(source, dict) or "kind" in source:
        return False
    if any(key in source for key in ("version", "failureHandling", "entrypoint", "onSuccessCallback")):
        return True
    if "onFailureCallback" in source or isinstance(source.get("nodes"), list):
        return True
    steps = source.get("steps")
    return isinstance(steps, list) and any(isinstance(s, dict) and ("up" in s or "down" in s) for s in steps)


def validate_upstream(source: dict, validate: Callable[[Any], Any]) -> tuple[dict | None, list[dict]]:
    """Convert, then check with ``validate`` (definitions.validation.validate_definition); (spec, errors)."""
    if nesting_depth(source, MAX_DEPTH) > MAX_DEPTH:  # checked before the recursive conversion walks it
        return None, [{"path": "", "message": f"the definition nests objects and lists deeper than {MAX_DEPTH} levels"}]
    conversion = convert(source)
    result = validate(conversion.source)
    reported = [problem["path"] for problem in conversion.problems]
    translated = [
        error for error in conversion.translate(result.errors) if not any(_under(error["path"], p) for p in reported)
    ]
    errors = conversion.problems + translated
    return (None if errors else result.spec), errors


@dataclass
class Conversion:
    """The native ``source``, the original-format ``problems``, and native path prefix -> original path."""

    source: dict
    version: str = "v1"
    problems: list[dict] = field(default_factory=list)
    paths: dict[str, str] = field(default_factory=dict)

    def add(self, path: str, message: str) -> None:
        self.problems.append({"path": path, "message": message})

    def unknown_keys(self, obj: dict, path: str, allowed: set[str]) -> None:
        for key in obj:
            if key not in allowed:
                self.add(_join(path, str(key)), f"unknown field '{key}'")

    def required(self, obj: dict, path: str, *keys: str) -> bool:
        missing = [key for key in keys if obj.get(key) is None]
        for key in missing:
            self.add(_join(path, key), f"{key} is required")
        return not missing

    def translate(self, errors: list[dict]) -> list[dict]:
        """Point each validation error of the converted definition at the original field it came from."""
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


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _under(path: str, prefix: str) -> bool:
    return path == prefix or prefix == "" or path.startswith((prefix + ".", prefix + "["))


def _last_key(path: str) -> str:
    return re.split(r"[.\[]", path)[-1]


def _object(value: Any, path: str, conv: Conversion) -> dict | None:
    if isinstance(value, dict):
        return value
    conv.add(path, f"{_last_key(path) or 'definition'} must be an object, got {type_name(value)}")
    return None


def _string(obj: dict, key: str, path: str, conv: Conversion) -> str | None:
    """A required non-blank string (the original's ``String`` fields, checked ``isBlank`` by its validators)."""
    where = _join(path, key)
    value = obj.get(key)
    if value is None:
        conv.add(where, f"{key} is required")
    elif not isinstance(value, str):
        conv.add(where, f"{key} must be a string, got {type_name(value)}")
    elif not value.strip():
        conv.add(where, f"{key} must not be blank")
    else:
        return value
    return None


def _integer(obj: dict, key: str, path: str, conv: Conversion, low: float, high: float) -> Any:
    value = obj.get(key)
    where = _join(path, key)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        conv.add(where, f"{key} must be an integer, got {type_name(value)}")
        return None
    if not low <= value <= high:
        conv.add(where, f"{key} must be between {low:g} and {high:g}, got {value}")
        return None
    return value


def _millis(value: Any) -> Any:
    """Milliseconds as seconds; anything but a number is passed on for validation to report."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    try:
        return value / 1000
    except OverflowError:  # an int beyond a float's range: validation reports it as out of range
        return value // 1000


def convert(source: dict) -> Conversion:
    """The native equivalent of a ``source`` in the original's format (see :func:`is_upstream`)."""
    v2 = "nodes" in source or "entrypoint" in source
    conv = Conversion({"kind": "graph" if v2 else "saga"}, version="v2" if v2 else "v1")
    conv.source["defaults"] = {"request": {"timeout_s": REQUEST_TIMEOUT_S}}
    # Its templates, switch and callback rules keep the original's meaning (docs/upstream.md).
    version = source.get("version")
    conv.source["dialect"] = {"name": f"trama-{conv.version}", "version": version if isinstance(version, str) else ""}
    conv.unknown_keys(source, "", V2_FIELDS if v2 else V1_FIELDS)
    conv.paths |= {"": "", "name": "name"}
    if "name" in source:
        conv.source["name"] = source["name"]  # checked by the normal validation
    else:
        conv.add("name", "name is required")
    _string(source, "version", "", conv)  # required by the original; Trama numbers versions itself
    _failure_handling(source.get("failureHandling"), conv)
    if v2:
        _nodes(source, conv)
    else:
        _steps(source, conv)
    notify = {}
    for key, outcome in (("onSuccessCallback", "succeeded"), ("onFailureCallback", "failed")):
        if source.get(key) is not None:
            call = _http_call(source[key], f"notify.{outcome}", key, conv)
            if isinstance(call, dict):
                call["retry"] = {"max_attempts": 1}  # WorkflowExecutor.kt sends them once, a failure is a warning
            notify[outcome] = call
    if notify:
        conv.source["notify"] = notify
    return conv


# --- failureHandling: the retry policy of every call ---------------------------------------------


def _failure_handling(value: Any, conv: Conversion) -> None:
    path = "failureHandling"
    if value is None:
        conv.add(path, "failureHandling is required ({type: retry | backoff, maxAttempts, ...})")
        return
    if _object(value, path, conv) is None:
        return
    kind = value.get("type")
    if not isinstance(kind, str) or kind not in FAILURE_HANDLING_FIELDS:
        conv.add(f"{path}.type", f"type must be 'retry' or 'backoff', got {kind!r}")
        return
    conv.unknown_keys(value, path, FAILURE_HANDLING_FIELDS[kind])
    delays = ("delayMillis",) if kind == "retry" else ("initialDelayMillis", "maxDelayMillis")
    if not conv.required(value, path, "maxAttempts", *delays):
        return
    retries = _integer(value, "maxAttempts", path, conv, 0, MAX_RETRIES)
    retry: dict[str, Any] = {"retry_on": list(RETRY_ON_EVERYTHING)}
    if retries is not None:
        retry["max_attempts"] = retries + 1
    if kind == "retry":
        delay = _millis(value["delayMillis"])
        retry |= {"backoff_s": delay, "multiplier": 1, "max_backoff_s": delay}
        conv.paths |= {f"defaults.retry.{key}": f"{path}.delayMillis" for key in ("backoff_s", "max_backoff_s")}
    else:
        retry |= {
            "backoff_s": _millis(value["initialDelayMillis"]),
            "max_backoff_s": _millis(value["maxDelayMillis"]),
            "multiplier": value.get("multiplier", 2.0),
        }
        conv.paths |= {
            "defaults.retry.backoff_s": f"{path}.initialDelayMillis",
            "defaults.retry.max_backoff_s": f"{path}.maxDelayMillis",
            "defaults.retry.multiplier": f"{path}.multiplier",
        }
        jitter = value.get("jitterRatio", 0.0)
        if jitter not in (0, None) or isinstance(jitter, bool):
            conv.add(f"{path}.jitterRatio", f"jitterRatio other than 0 {NOT_SUPPORTED} (Trama's back-off is exact)")
    conv.paths |= {"defaults": path, "defaults.retry": path}
    conv.source["defaults"]["retry"] = retry


# --- v1: steps[{name, up, down}] -------------------------------------------------------------


def _steps(source: dict, conv: Conversion) -> None:
    steps = source.get("steps")
    conv.paths["steps"] = "steps"
    if steps is None:
        conv.add("steps", "steps is required")
        return
    if not isinstance(steps, list):
        conv.add("steps", f"steps must be a list, got {type_name(steps)}")
        return
    conv.source["steps"] = [_step(step, f"steps[{i}]", conv) for i, step in enumerate(steps)]


def _step(step: Any, path: str, conv: Conversion) -> Any:
    if _object(step, path, conv) is None:
        return {}
    conv.unknown_keys(step, path, STEP_FIELDS)
    node: dict[str, Any] = {}
    name = _string(step, "name", path, conv)
    if name is not None:
        node["id"] = name
    conv.paths[f"{path}.id"] = f"{path}.name"
    for key, native in (("up", "request"), ("down", "compensation")):
        if step.get(key) is None:
            conv.add(f"{path}.{key}", f"{key} is required")
        else:
            node[native] = _http_call(step[key], f"{path}.{native}", f"{path}.{key}", conv)
    return node


# --- v2: entrypoint + nodes[{kind, id, ...}] ----------------------------------------------------


def _nodes(source: dict, conv: Conversion) -> None:
    if source.get("entrypoint") is None:
        conv.add("entrypoint", "entrypoint is required")
    else:
        conv.source["start"] = source["entrypoint"]
    conv.paths["start"] = "entrypoint"
    nodes = source.get("nodes")
    conv.paths["nodes"] = "nodes"
    if not isinstance(nodes, list):
        conv.add("nodes", "nodes is required" if nodes is None else f"nodes must be a list, got {type_name(nodes)}")
        return
    conv.source["nodes"] = {}
    for index, raw in enumerate(nodes):
        _node(raw, f"nodes[{index}]", conv)
    if isinstance(source.get("entrypoint"), str):
        _compensation_in_cycle(source["entrypoint"], nodes, conv)


def _compensation_in_cycle(entrypoint: str, nodes: list, conv: Conversion) -> None:
    """WorkflowDefinitionValidator.kt: a graph that loops (from the entrypoint) must have no compensation."""
    edges: dict[str, list] = {}
    compensated = []
    for index, raw in enumerate(nodes):
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str) or raw["id"] in edges:
            continue
        cases = raw.get("cases") if isinstance(raw.get("cases"), list) else []
        targets = [raw.get("next"), raw.get("default"), *(c.get("target") for c in cases if isinstance(c, dict))]
        edges[raw["id"]] = [t for t in targets if isinstance(t, str)]
        if raw.get("kind") == "task" and raw.get("compensation") is not None:
            compensated.append(index)
    if compensated and _has_cycle(entrypoint, edges):
        for index in compensated:
            conv.add(f"nodes[{index}].compensation", "compensation is not allowed in cyclic workflows")


def _has_cycle(start: str, edges: dict[str, list]) -> bool:
    """Whether a path from ``start`` comes back to a node on it (iterative depth-first search)."""
    on_path, done = set(), set()
    stack: list[tuple[str, int]] = [(start, 0)]
    on_path.add(start)
    while stack:
        node, position = stack[-1]
        targets = edges.get(node, [])
        if position == len(targets):
            stack.pop()
            on_path.discard(node)
            done.add(node)
            continue
        stack[-1] = (node, position + 1)
        target = targets[position]
        if target in on_path:
            return True
        if target not in done and target in edges:
            on_path.add(target)
            stack.append((target, 0))
    return False


def _node(raw: Any, path: str, conv: Conversion) -> None:
    if _object(raw, path, conv) is None:
        return
    node_id = _string(raw, "id", path, conv)
    kind = raw.get("kind")
    if not isinstance(kind, str) or kind not in NODE_FIELDS:
        conv.add(f"{path}.kind", f"kind must be task, switch or sleep, got {kind!r}")
        return
    conv.unknown_keys(raw, path, NODE_FIELDS[kind])
    if node_id is None:
        return
    if node_id in conv.source["nodes"]:
        conv.add(f"{path}.id", f"node ids must be unique: '{node_id}' is used twice")
        return
    native = f"nodes.{node_id}"
    conv.paths |= {native: path, f"{native}.type": f"{path}.kind"}
    conv.source["nodes"][node_id] = {"task": _task, "switch": _switch, "sleep": _sleep}[kind](raw, native, path, conv)


def _task(raw: dict, native: str, path: str, conv: Conversion) -> dict:
    node: dict[str, Any] = {"type": "task"}
    _next(raw, node, native, path, conv)
    if raw.get("compensation") is not None:
        node["compensation"] = _http_call(raw["compensation"], f"{native}.compensation", f"{path}.compensation", conv)
    where = f"{path}.action"
    if raw.get("action") is None:
        conv.add(where, "action is required")
        return node
    action = _object(raw["action"], where, conv)
    if action is None:
        return node
    conv.unknown_keys(action, where, ACTION_FIELDS)
    mode = action.get("mode")
    if mode not in ("sync", "async"):
        conv.add(f"{where}.mode", f"mode must be 'sync' or 'async', got {mode!r}")
        return node
    if action.get("request") is None:
        conv.add(f"{where}.request", "request is required")
        return node
    request = _http_call(action["request"], f"{native}.request", f"{where}.request", conv)
    codes = ("acceptedStatusCodes", ASYNC_ACCEPTED) if mode == "async" else ("successStatusCodes", None)
    if action.get(codes[0]) is not None:
        _status_codes(action[codes[0]], f"{where}.{codes[0]}", conv)
    if isinstance(request, dict) and action.get(codes[0]) is not None:
        request["success_status"] = action[codes[0]]  # DefinitionNormalizer.kt / TaskNodeHandler.kt
        conv.paths[f"{native}.request.success_status"] = f"{where}.{codes[0]}"
    elif isinstance(request, dict) and codes[1] is not None:
        request["success_status"] = list(codes[1])
    node["request"] = request
    if mode == "async":
        node["type"] = "async_task"
        _callback(action.get("callback"), node, native, f"{where}.callback", conv)
    return node


def _callback(value: Any, node: dict, native: str, path: str, conv: Conversion) -> None:
    if value is None:
        conv.add(path, "callback is required when mode is async")
        return
    if _object(value, path, conv) is None:
        return
    conv.unknown_keys(value, path, CALLBACK_FIELDS)
    if conv.required(value, path, "timeoutMillis"):
        node["timeout_s"] = _millis(value["timeoutMillis"])
        conv.paths[f"{native}.timeout_s"] = f"{path}.timeoutMillis"
    rules = {}
    for key, native_key in (("successWhen", "success_when"), ("failureWhen", "failure_when")):
        if value.get(key) is not None:
            _rule_roots(value[key], f"{path}.{key}", conv, CALLBACK_RULE_ROOTS, "CallbackReceiver.kt")
            rules[native_key] = value[key]  # read over {input, callback: {body}}, as CallbackReceiver.kt does
            conv.paths[f"{native}.callback.{native_key}"] = f"{path}.{key}"
    # CallbackReceiver.kt: "no conditions configured -> accept any callback as success", whatever its
    # body says (the demos call back with {"status": "success"} or "approved"), which Trama would refuse.
    node["callback"] = rules or {"success_when": True}


def _switch(raw: dict, native: str, path: str, conv: Conversion) -> dict:
    node: dict[str, Any] = {"type": "switch"}
    if conv.required(raw, path, "cases", "default"):
        node["default"] = raw["default"]
    conv.paths[f"{native}.default"] = f"{path}.default"
    cases = raw.get("cases")
    if cases is None:
        return node
    if not isinstance(cases, list):
        conv.add(f"{path}.cases", f"cases must be a list, got {type_name(cases)}")
        return node
    node["cases"] = [_case(case, f"{native}.cases[{i}]", f"{path}.cases[{i}]", conv) for i, case in enumerate(cases)]
    return node


def _case(case: Any, native: str, path: str, conv: Conversion) -> Any:
    if _object(case, path, conv) is None:
        return {}
    conv.unknown_keys(case, path, CASE_FIELDS)
    conv.paths |= {native: path, f"{native}.when": f"{path}.when", f"{native}.next": f"{path}.target"}
    name = case.get("name")
    if name is not None and not isinstance(name, str):
        conv.add(f"{path}.name", f"name must be a string, got {type_name(name)}")
    converted: dict[str, Any] = {"name": name} if isinstance(name, str) else {}
    if not conv.required(case, path, "when", "target"):
        return converted
    converted["next"] = case["target"]
    rule = case["when"]
    if isinstance(rule, str):  # JsonElementFlexSerializer: a string holds the rule as JSON text
        rule = _json_text(rule)
        if rule is _NOT_JSON:
            conv.add(f"{path}.when", "when must be a JSON Logic rule (an object, or a string holding one as JSON)")
            return converted
    _rule_roots(rule, f"{path}.when", conv, SWITCH_RULE_ROOTS, "SwitchNodeHandler.kt")
    converted["when"] = rule  # read over the data SwitchNodeHandler.kt gives it (the spec's dialect says so)
    return converted


def _sleep(raw: dict, native: str, path: str, conv: Conversion) -> dict:
    node: dict[str, Any] = {"type": "sleep"}
    _next(raw, node, native, path, conv)
    if conv.required(raw, path, "durationMillis"):
        duration = raw["durationMillis"]
        if isinstance(duration, int | float) and not isinstance(duration, bool) and duration <= 0:
            conv.add(f"{path}.durationMillis", f"durationMillis must be positive, got {duration}")
        node["duration_s"] = _millis(duration)
        conv.paths[f"{native}.duration_s"] = f"{path}.durationMillis"
    return node


def _next(raw: dict, node: dict, native: str, path: str, conv: Conversion) -> None:
    if raw.get("next") is not None:
        node["next"] = raw["next"]
        conv.paths[f"{native}.next"] = f"{path}.next"


# --- HttpCall ------------------------------------------------------------------------------------


def _template_text(value: Any) -> str:
    """The text of a ``TemplateString`` (SagaDefinition.kt, TemplateStringSerializer): a string,
    ``{"value": string}``, or any other JSON as its JSON text."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("value"), str):
        return value["value"]
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _http_call(raw: Any, native: str, path: str, conv: Conversion) -> Any:
    """An ``HttpCall`` (``up``, ``down``, ``action.request``, ``compensation``, completion callbacks).

    Its templates are kept as the author wrote them: the spec's ``dialect`` renders them as the original does.
    """
    conv.paths[native] = path
    if _object(raw, path, conv) is None:
        return None
    conv.unknown_keys(raw, path, HTTP_CALL_FIELDS)
    request: dict[str, Any] = {}
    if raw.get("url") is None:
        conv.add(f"{path}.url", "url is required")
    else:
        url = _template_text(raw["url"])
        if not url.strip():
            conv.add(f"{path}.url", "url must not be blank")
        request["url"] = url
    verb = raw.get("verb")
    if verb is None:
        conv.add(f"{path}.verb", "verb is required")
    elif not isinstance(verb, str) or verb not in SUCCESS_BY_VERB:
        conv.add(f"{path}.verb", f"verb must be one of {', '.join(SUCCESS_BY_VERB)}, got {verb!r}")
    else:
        request["method"] = verb
    conv.paths[f"{native}.method"] = f"{path}.verb"
    _headers(raw, request, path, conv)
    if raw.get("body") is not None:
        _body(raw["body"], request, native, path, conv)
    codes = raw.get("successStatusCodes")
    if codes is not None:
        _status_codes(codes, f"{path}.successStatusCodes", conv)
        request["success_status"] = codes
    elif "method" in request:
        request["success_status"] = list(SUCCESS_BY_VERB[verb])
    conv.paths[f"{native}.success_status"] = f"{path}.successStatusCodes"
    return request


def _status_codes(codes: Any, path: str, conv: Conversion) -> None:
    """SagaDefinitionValidator.kt: not empty, each 100-599 (checked here too: a step Trama cannot
    read further, such as one with a blank name, still gets them)."""
    if not isinstance(codes, list) or not codes:
        conv.add(path, f"{_last_key(path)} must be a non-empty list of HTTP status codes (100-599)")
        return
    for index, code in enumerate(codes):
        if isinstance(code, bool) or not isinstance(code, int) or not 100 <= code <= 599:
            conv.add(f"{path}[{index}]", f"{_last_key(path)} contains invalid code: {code!r}")


def _headers(raw: dict, request: dict, path: str, conv: Conversion) -> None:
    headers = raw.get("headers")
    if headers is None:
        return
    where = f"{path}.headers"
    if _object(headers, where, conv) is None:
        return
    request["headers"] = {}
    for key, value in headers.items():
        text = _template_text(value)
        if conv.version == "v1" and (not key.strip() or not text.strip()):  # SagaDefinitionValidator.kt
            conv.add(f"{where}.{key}", "a header's name and value must not be blank")
        request["headers"][key] = text


def _body(body: Any, request: dict, native: str, path: str, conv: Conversion) -> None:
    """The body as the original sends it: its text, rendered, sent raw (WorkflowExecutor.kt, TaskNodeHandler.kt)."""
    text = _template_text(body)
    if not text.strip():
        conv.add(f"{path}.body", "body must not be blank when provided")
        return
    request["body"], request["body_format"] = text, "text"
    conv.paths[f"{native}.body"] = f"{path}.body"


_NOT_JSON = object()


def _json_text(text: str) -> Any:
    """The JSON value ``text`` holds, or ``_NOT_JSON`` (also when it nests deeper than the definition may)."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return _NOT_JSON
    return _NOT_JSON if nesting_depth(value, MAX_DEPTH) > MAX_DEPTH else value


# --- JSON Logic rules: a variable outside the data the original gives them reads nothing there ----


def _rule_roots(rule: Any, path: str, conv: Conversion, roots: tuple[str, ...], source: str) -> None:
    """Refuse every ``{"var": name}`` of ``rule`` whose root the original's data lacks (it is always null
    there, so the rule can only be a mistake)."""
    if isinstance(rule, list):
        for index, item in enumerate(rule):
            _rule_roots(item, f"{path}[{index}]", conv, roots, source)
    elif isinstance(rule, dict) and len(rule) == 1 and "var" in rule:
        args = rule["var"]
        name = args[0] if isinstance(args, list) and args else args
        if isinstance(name, str) and name and name.split(".")[0] not in roots:
            conv.add(f"{path}.var", f"rule variable {name!r} reads nothing in the original ({source} gives "
                     f"its rules {', '.join(roots)})")  # fmt: skip
    elif isinstance(rule, dict):
        for key, item in rule.items():
            _rule_roots(item, f"{path}.{key}", conv, roots, source)
