"""Requests, retry policies, callback rules, top-level ``defaults`` and ``notify``.

Each reader validates what the author wrote and returns it normalized with every
default filled in (docs/normalized-spec.md), or ``None`` when it is invalid.
"""

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from definitions.rules import rule_problems
from definitions.templating import template_problems
from definitions.validation.problems import (
    Problems,
    check_keys,
    expect_object,
    join,
    read_integer,
    read_number,
    read_string,
    type_name,
)

DAY = 86_400.0
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
REQUEST_FIELDS = {"method", "url", "headers", "query", "body", "body_format", "timeout_s", "success_status"}
# "json" (the default) sends the rendered body as JSON; "text" sends a string body as the raw text it renders to.
BODY_FORMATS = ("json", "text")
DEFAULT_REQUEST_FIELDS = {"headers", "query", "timeout_s"}
RETRY_FIELDS = {"max_attempts", "backoff_s", "multiplier", "max_backoff_s", "retry_on"}
# "callback_timeout": an async call whose callback never came is sent again (as the original does).
RETRY_ON_WORDS = ("network", "timeout", "1xx", "2xx", "3xx", "4xx", "5xx", "callback_timeout")
REQUEST_TIMEOUT = (0.0, 300.0, False)
ASYNC_TIMEOUT = (0.0, 30 * DAY, False)
ASYNC_DEFAULT_TIMEOUT_S = 3600.0
ASYNC_SUCCESS_STATUS = [202, 200]
BUILTIN_RETRY = {
    "max_attempts": 1,
    "backoff_s": 1.0,
    "multiplier": 2.0,
    "max_backoff_s": 60.0,
    "retry_on": ["network", "timeout", 408, 429, "5xx"],
}
# An absolute http(s) URL with a host, checked after templates are blanked out.
_URL = re.compile(r"https?://[^/?#\s]+(?:[/?#]\S*)?", re.IGNORECASE)
_TEMPLATE = re.compile(r"\{\{[^{}]*\}\}")


@dataclass
class Defaults:
    """The top-level ``defaults`` block, already merged over the built-in defaults."""

    headers: dict = field(default_factory=dict)
    query: dict = field(default_factory=dict)
    request_timeout_s: float = 10.0
    retry: dict = field(default_factory=lambda: copy.deepcopy(BUILTIN_RETRY))
    async_timeout_s: float = ASYNC_DEFAULT_TIMEOUT_S
    dialect: dict | None = None  # the definition's top-level ``dialect``: whose template language it is written in


def read_defaults(value: Any, problems: Problems) -> Defaults:
    """Validate ``defaults``; invalid parts fall back to the built-ins (their problems are recorded)."""
    defaults = Defaults(request_timeout_s=float(settings.TRAMA_DEFAULT_REQUEST_TIMEOUT))
    if value is None or expect_object(value, "defaults", problems) is None:
        return defaults
    check_keys(value, "defaults", {"request", "retry", "timeout_s"}, problems)
    timeout = read_number(value, "timeout_s", "defaults", problems, ASYNC_TIMEOUT, defaults.async_timeout_s)
    defaults.async_timeout_s = timeout or defaults.async_timeout_s
    defaults.retry = read_retry(value.get("retry"), "defaults.retry", problems, defaults.retry) or defaults.retry
    request = value.get("request")
    if request is not None and expect_object(request, "defaults.request", problems) is not None:
        _read_default_request(request, defaults, problems)
    return defaults


def _read_default_request(request: dict, defaults: Defaults, problems: Problems) -> None:
    path = "defaults.request"
    check_keys(request, path, DEFAULT_REQUEST_FIELDS, problems)
    defaults.headers = _headers(request, path, problems, {}) or {}
    defaults.query = _query(request, path, problems, {}) or {}
    timeout = read_number(request, "timeout_s", path, problems, REQUEST_TIMEOUT, defaults.request_timeout_s)
    defaults.request_timeout_s = timeout or defaults.request_timeout_s
    problems.extend(template_problems({k: request[k] for k in ("headers", "query") if k in request}, path))


def read_request(value: Any, path: str, problems: Problems, defaults: Defaults, *, role: str, retry=None) -> Any:
    """A normalized request. ``role`` is task, async_task, compensation or notify.

    Compensation and notify requests carry their own ``retry``; ``retry`` is the
    policy they fall back to (the node's, else the defaults).
    """
    if expect_object(value, path, problems) is None:
        return None
    carries_retry = role in ("compensation", "notify")
    check_keys(value, path, REQUEST_FIELDS | ({"retry"} if carries_retry else set()), problems)
    default_status = ASYNC_SUCCESS_STATUS if role == "async_task" else None
    request = {
        "method": _method(value, path, problems),
        "url": _url(value, path, problems),
        "headers": _headers(value, path, problems, defaults.headers),
        "query": _query(value, path, problems, defaults.query),
        "timeout_s": read_number(value, "timeout_s", path, problems, REQUEST_TIMEOUT, defaults.request_timeout_s),
        "success_status": _success_status(value, path, problems, default_status),
    }
    if "body" in value:
        request["body"] = value["body"]
    if "body_format" in value:
        request["body_format"] = _body_format(value, path, problems)
    if carries_retry:
        request["retry"] = read_retry(value.get("retry"), join(path, "retry"), problems, retry or defaults.retry)
    templated = {k: value[k] for k in ("url", "headers", "query", "body") if k in value}
    problems.extend(template_problems(templated, path, defaults.dialect))
    return request


def _body_format(request: dict, path: str, problems: Problems) -> str | None:
    body_format = request["body_format"]
    if body_format not in BODY_FORMATS:
        allowed = ", ".join(BODY_FORMATS)
        problems.add(join(path, "body_format"), f"body_format must be one of {allowed}, got {body_format!r}")
        return None
    if body_format == "text" and not isinstance(request.get("body"), str | None):
        problems.add(join(path, "body"), f"a text body must be a string, got {type_name(request['body'])}")
    return body_format


def _method(request: dict, path: str, problems: Problems) -> str | None:
    method = read_string(request, "method", path, problems)
    if method is None:
        return None
    if method.upper() not in METHODS:
        problems.add(join(path, "method"), f"method must be one of {', '.join(METHODS)}, got {method!r}")
        return None
    return method.upper()


def _url(request: dict, path: str, problems: Problems) -> str | None:
    """An absolute http(s) URL, or a URL that starts with a template (``{{payload.url}}``)."""
    url = read_string(request, "url", path, problems)
    if url is None:
        return None
    if url.startswith("{{") or _URL.fullmatch(_TEMPLATE.sub("x", url)):
        return url
    problems.add(join(path, "url"), f"url must be an absolute http:// or https:// URL, got {url!r}")
    return None


def _headers(request: dict, path: str, problems: Problems, base: dict) -> dict | None:
    """Headers merged key by key over ``base``; every value must be a string."""
    value = request.get("headers")
    if value is None:
        return dict(base)
    where = join(path, "headers")
    if expect_object(value, where, problems) is None:
        return None
    bad = [key for key, item in value.items() if not isinstance(item, str)]
    for key in bad:
        problems.add(join(where, key), f"header '{key}' must be a string, got {type_name(value[key])}")
    return None if bad else {**base, **value}


def _query(request: dict, path: str, problems: Problems, base: dict) -> dict | None:
    value = request.get("query")
    if value is None:
        return dict(base)
    return dict(value) if expect_object(value, join(path, "query"), problems) is not None else None


def _success_status(request: dict, path: str, problems: Problems, default: list | None) -> list | None:
    value = request.get("success_status")
    if value is None:
        return list(default) if default else None
    where = join(path, "success_status")
    if not isinstance(value, list) or not value:
        problems.add(where, "success_status must be a non-empty list of HTTP status codes (100-599)")
        return None
    for index, code in enumerate(value):
        if isinstance(code, bool) or not isinstance(code, int) or not 100 <= code <= 599:
            problems.add(f"{where}[{index}]", f"success_status items must be integers 100-599, got {code!r}")
    return list(value)


def read_retry(value: Any, path: str, problems: Problems, fallback: dict) -> dict | None:
    """A retry policy; fields it does not set come from ``fallback``."""
    if value is None:
        return copy.deepcopy(fallback)
    if expect_object(value, path, problems) is None:
        return None
    check_keys(value, path, RETRY_FIELDS, problems)
    return {
        "max_attempts": read_integer(value, "max_attempts", path, problems, (1, 100), fallback["max_attempts"]),
        "backoff_s": read_number(value, "backoff_s", path, problems, (0.0, 3600.0, True), fallback["backoff_s"]),
        "multiplier": read_number(value, "multiplier", path, problems, (1.0, 10.0, True), fallback["multiplier"]),
        "max_backoff_s": read_number(
            value, "max_backoff_s", path, problems, (0.0, DAY, True), fallback["max_backoff_s"]
        ),
        "retry_on": _retry_on(value, path, problems, fallback["retry_on"]),
    }


def _retry_on(retry: dict, path: str, problems: Problems, default: list) -> list | None:
    value = retry.get("retry_on")
    if value is None:
        return list(default)
    where = join(path, "retry_on")
    if not isinstance(value, list):
        problems.add(where, f"retry_on must be a list, got {type_name(value)}")
        return None
    for index, item in enumerate(value):
        if item in RETRY_ON_WORDS and isinstance(item, str):
            continue
        if isinstance(item, int) and not isinstance(item, bool) and 100 <= item <= 599:
            continue
        words = ", ".join(f'"{word}"' for word in RETRY_ON_WORDS)
        problems.add(f"{where}[{index}]", f"retry_on items must be {words} or a status code 100-599, got {item!r}")
    return list(value)


def read_callback(value: Any, path: str, problems: Problems) -> dict | None:
    """``callback.success_when`` / ``failure_when``: JSON Logic rules over the callback body."""
    if value is None:
        return {"success_when": None, "failure_when": None}
    if expect_object(value, path, problems) is None:
        return None
    check_keys(value, path, {"success_when", "failure_when"}, problems)
    for key in ("success_when", "failure_when"):
        problems.extend(rule_problems(value.get(key), join(path, key)))
    return {"success_when": value.get("success_when"), "failure_when": value.get("failure_when")}


def read_notify(value: Any, problems: Problems, defaults: Defaults) -> dict | None:
    """``notify``: only the keys the author set, each a request with its own retry."""
    if expect_object(value, "notify", problems) is None:
        return None
    check_keys(value, "notify", {"succeeded", "failed"}, problems)
    notify = {}
    for key in ("succeeded", "failed"):
        if key in value:
            notify[key] = read_request(value[key], f"notify.{key}", problems, defaults, role="notify")
    return notify
