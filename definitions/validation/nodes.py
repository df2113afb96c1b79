"""One validator per node type; each returns the node's normalized fields.

A saga step is validated here too (as a ``task`` or ``async_task`` node), so
``path`` is whatever the author wrote: ``nodes.<id>`` or ``steps[i]``.
"""

import re
from dataclasses import dataclass
from typing import Any

from definitions.rules import rule_problems
from definitions.templating import template_problems
from definitions.validation.instants import InstantError, parse_instant
from definitions.validation.problems import Problems, check_keys, expect_object, join, read_number, read_string
from definitions.validation.requests import (
    ASYNC_TIMEOUT,
    DAY,
    Defaults,
    read_callback,
    read_request,
    read_retry,
)

NODE_ID = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
FAILURE_ACTIONS = ("compensate", "fail")
SLEEP_DURATION = (0.0, 365 * DAY, True)
TASK_FIELDS = {"next", "request", "retry", "compensation", "on_failure"}
ASYNC_FIELDS = TASK_FIELDS | {"timeout_s", "heartbeat_s", "on_timeout", "callback"}


@dataclass
class Context:
    """What every node validator needs besides the node itself."""

    problems: Problems
    defaults: Defaults
    node_ids: set[str]


def node_id_problem(node_id: Any) -> str | None:
    """Why ``node_id`` cannot name a node, or None when it can."""
    if not isinstance(node_id, str) or not NODE_ID.fullmatch(node_id):
        return f"invalid node id {node_id!r}: must match ^{NODE_ID.pattern}$ (no '.' or ':')"
    if node_id in FAILURE_ACTIONS:
        return f"node id '{node_id}' is reserved: on_failure/on_timeout use it as a keyword"
    return None


def validate_node(raw: Any, path: str, ctx: Context) -> dict | None:
    """The normalized node at ``path``, or None when it is not an object of a known type."""
    if expect_object(raw, path, ctx.problems) is None:
        return None
    node_type = read_string(raw, "type", path, ctx.problems)
    if node_type is None:
        return None
    if node_type not in VALIDATORS:
        expected = ", ".join(VALIDATORS)
        ctx.problems.add(join(path, "type"), f"unknown node type '{node_type}' (expected one of {expected})")
        return None
    fields, validator = VALIDATORS[node_type]
    check_keys(raw, path, fields | {"type"}, ctx.problems)
    return {"type": node_type, **validator(raw, path, ctx)}


def _target(node: dict, key: str, path: str, ctx: Context) -> str | None:
    """A node id field (``next``, ``default``, ...) that must name an existing node; None when absent."""
    value = read_string(node, key, path, ctx.problems, default=None)
    if value is None:
        return None
    if value not in ctx.node_ids:
        ctx.problems.add(join(path, key), f"unknown node '{value}'")
        return None
    return value


def _failure_action(node: dict, key: str, path: str, ctx: Context) -> str | None:
    """``on_failure`` / ``on_timeout``: "compensate" (default), "fail", or a node id."""
    value = read_string(node, key, path, ctx.problems, default="compensate")
    if value is None or value in FAILURE_ACTIONS:
        return value
    return _target(node, key, path, ctx)


def _task(node: dict, path: str, ctx: Context, role: str = "task") -> dict:
    retry = read_retry(node.get("retry"), join(path, "retry"), ctx.problems, ctx.defaults.retry)
    compensation = node.get("compensation")
    if compensation is not None:
        where = join(path, "compensation")
        compensation = read_request(compensation, where, ctx.problems, ctx.defaults, role="compensation", retry=retry)
    request = None
    if "request" not in node:
        ctx.problems.add(join(path, "request"), "request is required")
    else:
        request = read_request(node["request"], join(path, "request"), ctx.problems, ctx.defaults, role=role)
    return {
        "next": _target(node, "next", path, ctx),
        "request": request,
        "retry": retry,
        "compensation": compensation,
        "on_failure": _failure_action(node, "on_failure", path, ctx),
    }


def _async_task(node: dict, path: str, ctx: Context) -> dict:
    problems = ctx.problems
    return {
        **_task(node, path, ctx, role="async_task"),
        "timeout_s": read_number(node, "timeout_s", path, problems, ASYNC_TIMEOUT, ctx.defaults.async_timeout_s),
        "heartbeat_s": read_number(node, "heartbeat_s", path, problems, ASYNC_TIMEOUT, None),
        "on_timeout": _failure_action(node, "on_timeout", path, ctx),
        "callback": read_callback(node.get("callback"), join(path, "callback"), problems),
    }


def _switch(node: dict, path: str, ctx: Context) -> dict:
    cases = node.get("cases")
    where = join(path, "cases")
    if "cases" not in node:
        ctx.problems.add(where, "cases is required")
    elif not isinstance(cases, list) or not cases:
        ctx.problems.add(where, "cases must be a non-empty list of {when, next}")
    else:
        cases = [_case(case, f"{where}[{index}]", ctx) for index, case in enumerate(cases)]
    if "default" not in node:
        ctx.problems.add(join(path, "default"), "default is required: the node to go to when no case matches")
    return {
        "next": None,
        "cases": cases if isinstance(cases, list) else None,
        "default": _target(node, "default", path, ctx),
    }


def _case(case: Any, path: str, ctx: Context) -> dict | None:
    if expect_object(case, path, ctx.problems) is None:
        return None
    check_keys(case, path, {"when", "next", "name"}, ctx.problems, required=("when",))
    ctx.problems.extend(rule_problems(case.get("when"), join(path, "when")))
    if "next" not in case:
        ctx.problems.add(join(path, "next"), "next is required")
    converted = {"when": case.get("when"), "next": _target(case, "next", path, ctx)}
    if case.get("name") is not None:  # a label: the step's detail names the case that matched
        if not isinstance(case["name"], str) or len(case["name"]) > 200:
            ctx.problems.add(join(path, "name"), "name must be a string of at most 200 characters")
        converted["name"] = case["name"]
    return converted


def _sleep(node: dict, path: str, ctx: Context) -> dict:
    if (node.get("duration_s") is None) == (node.get("until") is None):
        ctx.problems.add(path, "a sleep node needs exactly one of duration_s or until")
    duration = read_number(node, "duration_s", path, ctx.problems, SLEEP_DURATION, None)
    return {"next": _target(node, "next", path, ctx), "duration_s": duration, "until": _until(node, path, ctx)}


def _until(node: dict, path: str, ctx: Context) -> str | None:
    """A template, or a literal ISO-8601 time that names its timezone and holds in UTC."""
    value = read_string(node, "until", path, ctx.problems, default=None)
    if value is None:
        return None
    where = join(path, "until")
    if "{{" in value or "}}" in value:
        ctx.problems.extend(template_problems(value, where))
        return value
    try:
        parse_instant(value)
    except InstantError as exc:
        ctx.problems.add(where, f"until {exc}, got {value!r}")
        return None
    return value


def _succeed(node: dict, path: str, ctx: Context) -> dict:
    ctx.problems.extend(template_problems(node.get("output"), join(path, "output")))
    return {"next": None, "output": node.get("output")}


def _fail(node: dict, path: str, ctx: Context) -> dict:
    ctx.problems.extend(template_problems(node.get("error"), join(path, "error")))
    return {"next": None, "error": node.get("error", f"the execution reached the fail node at {path}")}


def _parallel(node: dict, path: str, ctx: Context) -> dict:
    branches = node.get("branches")
    where = join(path, "branches")
    if not isinstance(branches, list) or not branches:
        ctx.problems.add(where, "branches must be a non-empty list of node ids")
        branches = None
    else:
        branches = [_branch(branches, index, where, ctx) for index in range(len(branches))]
    return {"next": _target(node, "next", path, ctx), "branches": branches}


def _branch(branches: list, index: int, path: str, ctx: Context) -> str | None:
    value, where = branches[index], f"{path}[{index}]"
    if not isinstance(value, str):
        ctx.problems.add(where, "branches items must be node ids (strings)")
    elif value not in ctx.node_ids:
        ctx.problems.add(where, f"unknown node '{value}'")
    elif value in branches[:index]:
        ctx.problems.add(where, f"branch '{value}' is listed twice")
    else:
        return value
    return None


VALIDATORS = {
    "task": (TASK_FIELDS, _task),
    "async_task": (ASYNC_FIELDS, _async_task),
    "switch": ({"cases", "default"}, _switch),
    "sleep": ({"next", "duration_s", "until"}, _sleep),
    "succeed": ({"output"}, _succeed),
    "fail": ({"error"}, _fail),
    "parallel": ({"branches", "next"}, _parallel),
}
