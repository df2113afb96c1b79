"""Builders of normalized specs (what validation produces), for tests that store or decide on them directly.

``retry()`` and ``chain()`` are the only ones: tests that need other values pass them.
"""

from typing import Any

DEFAULT_RETRY = {"max_attempts": 1, "backoff_s": 0.01, "multiplier": 2.0, "max_backoff_s": 1.0,
                 "retry_on": ["network", "timeout", 408, 429, "5xx"]}  # fmt: skip


def req(method: str, url: str, **extra: Any) -> dict:
    return {"method": method, "url": url, "headers": {}, "query": {}, "timeout_s": 5.0, "success_status": None} | extra


def task(request: dict, next: str | None = None, compensation: dict | None = None, **extra: Any) -> dict:
    if compensation is not None:
        compensation = {**compensation, "retry": extra.pop("compensation_retry", DEFAULT_RETRY)}
    node = {"type": "task", "request": request, "retry": DEFAULT_RETRY, "compensation": compensation}
    return node | {"on_failure": "compensate", "next": next} | extra


def retry(max_attempts: int = 1, **extra: Any) -> dict:
    """A RETRY policy: DEFAULT_RETRY (fast back-off) with ``max_attempts`` and overrides."""
    return DEFAULT_RETRY | {"max_attempts": max_attempts} | extra


def switch(cases: list[tuple[dict, str]], default: str) -> dict:
    """A switch node from ``[(rule, next), ...]`` and a default target."""
    return {"type": "switch", "next": None, "cases": [{"when": w, "next": n} for w, n in cases], "default": default}


def sleep(duration_s: float, next: str | None = None) -> dict:
    return {"type": "sleep", "duration_s": duration_s, "until": None, "next": next}


def chain(service_url: str, *ids: str, **per_node: dict) -> dict:
    """Task nodes ``ids[0] -> ids[1] -> ...``, each POSTing to ``<service_url>/<id>``; ``per_node`` overrides keys."""
    nodes = {}
    for i, node_id in enumerate(ids):
        nxt = ids[i + 1] if i + 1 < len(ids) else None
        nodes[node_id] = task(req("POST", f"{service_url}/{node_id}"), next=nxt) | per_node.get(node_id, {})
    return nodes
