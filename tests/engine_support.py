"""Helpers for engine tests: build normalized specs and drive executions in-process.

``drive`` runs the real worker code (executions.services.advance_execution)
in the test process, in a loop, the way the timer loop and queue would.
"""

import time
from typing import Any

from django.utils import timezone

from definitions.models import Definition
from executions.models import FINAL_STATUSES, Execution
from executions.services import advance_execution

DEFAULT_RETRY = {"max_attempts": 1, "backoff_s": 0.01, "multiplier": 2.0, "max_backoff_s": 1.0,
                 "retry_on": ["network", "timeout", 408, 429, "5xx"]}  # fmt: skip


def req(method: str, url: str, **extra: Any) -> dict:
    return {"method": method, "url": url, "headers": {}, "query": {}, "timeout_s": 5.0, "success_status": None} | extra


def task(request: dict, next: str | None = None, compensation: dict | None = None, **extra: Any) -> dict:
    if compensation is not None:
        compensation = {**compensation, "retry": extra.pop("compensation_retry", DEFAULT_RETRY)}
    node = {"type": "task", "request": request, "retry": DEFAULT_RETRY, "compensation": compensation}
    return node | {"on_failure": "compensate", "next": next} | extra


def store(nodes: dict, start: str, name: str = "t") -> Definition:
    spec = {"name": name, "kind": "graph", "start": start, "nodes": nodes}
    version = Definition.objects.filter(name=name).count() + 1
    return Definition.objects.create(
        name=name, version=version, kind="graph", source=spec, spec=spec, digest=str(version)
    )


def drive(execution: Execution, timeout: float = 15.0, until: set[str] | None = None) -> Execution:
    """Advance until final (or a status in ``until``), honouring due times like the timer loop."""
    stop = until or set(FINAL_STATUSES)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        execution.refresh_from_db()
        if execution.status in stop:
            return execution
        if execution.due_at is not None and execution.due_at <= timezone.now():
            advance_execution(execution.pk)
        else:
            time.sleep(0.01)
    raise AssertionError(f"execution stuck in {execution.status} (state {execution.state})")


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


def history(execution: Execution) -> list[tuple[str, str, int, str]]:
    """The execution's steps as (node_id, phase, attempt, status), in order."""
    return list(execution.steps.order_by("seq").values_list("node_id", "phase", "attempt", "status"))


def idempotency_keys(requests: list) -> list[str | None]:
    """The Idempotency-Key header of each recorded request (tests.support.Recorded)."""
    return [r.header("Idempotency-Key") for r in requests]
