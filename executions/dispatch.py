"""Outbound HTTP: the one place Trama calls users' services.

A pooled ``requests`` session per thread, connect and read timeouts, no
redirects, the egress guard, and a cap on how much of a response is read and
kept. Returns an ``Outcome`` instead of raising: the state machine decides what
a failure means.
"""

import json
import threading
from dataclasses import dataclass
from typing import Any

import requests
from django.conf import settings

from executions import telemetry
from executions.egress import EgressDenied, check_url

_local = threading.local()
_MAX_HEADERS = 50


@dataclass(frozen=True)
class Outcome:
    """``failure`` is None when a response came back (whatever its status), else
    "network", "timeout" or "egress"."""

    response: dict | None
    failure: str | None = None
    error: str = ""
    elapsed_ms: float = 0.0


def _session() -> requests.Session:
    session = getattr(_local, "session", None)
    if session is None:
        session = requests.Session()
        session.trust_env = False  # proxies from the environment must not reroute calls around the egress guard
        _local.session = session
    return session


def send(request: dict, headers: dict[str, str]) -> Outcome:
    """Send a rendered request (docs/normalized-spec.md REQ); ``headers`` are added by Trama."""
    url = str(request["url"])
    try:
        check_url(url)
    except EgressDenied as exc:
        return Outcome(None, "egress", str(exc))
    all_headers = {str(k): str(v) for k, v in (request.get("headers") or {}).items()} | headers
    all_headers |= telemetry.trace_headers()
    kwargs: dict[str, Any] = {"headers": all_headers, "params": request.get("query") or None}
    if "body" in request:
        kwargs["json"] = request["body"]
    timeout = float(request.get("timeout_s") or settings.TRAMA_DEFAULT_REQUEST_TIMEOUT)
    try:
        with _session().request(
            request["method"], url, timeout=(min(timeout, 5.0), timeout), allow_redirects=False, stream=True, **kwargs
        ) as resp:
            return Outcome(_read_response(resp), elapsed_ms=resp.elapsed.total_seconds() * 1000)
    except requests.Timeout as exc:
        return Outcome(None, "timeout", f"timed out after {timeout}s: {exc.__class__.__name__}")
    except requests.RequestException as exc:
        return Outcome(None, "network", f"{exc.__class__.__name__}: {exc}"[:500])


def _read_response(resp: requests.Response) -> dict:
    cap = settings.TRAMA_RESPONSE_BODY_CAP
    raw = resp.raw.read(cap + 1, decode_content=True) if cap else b""
    truncated = len(raw) > cap
    headers = dict(list(resp.headers.items())[:_MAX_HEADERS])
    return {"status": resp.status_code, "headers": headers, "body": _decode_body(raw[:cap], truncated)}


def _decode_body(raw: bytes, truncated: bool) -> Any:
    if not raw:
        return None
    # PostgreSQL's jsonb cannot hold NUL characters, escaped or not.
    text = raw.decode("utf-8", errors="replace").replace("\x00", "\ufffd").replace("\\u0000", "\ufffd")
    if truncated:
        return {"truncated": True, "text": text}
    try:
        return json.loads(text)
    except ValueError:
        return text


def is_success(request: dict, status: int) -> bool:
    codes = request.get("success_status")
    return status in codes if codes else 200 <= status < 300
