"""Metrics, traces and structured logs of the engine (docs/metrics.md).

The write path (executions/services/, executions/dispatch.py and the callback
receiver) calls the hooks at the bottom of this module with one line each; the
hooks never raise into the engine and cost a few attribute reads when tracing
is off. Three parts:

* Metrics: the ``trama_*`` families on ``/metrics`` are counted from the
  database at scrape time (executions/metrics.py), so every worker process on
  every machine adds up. What leaves no row is counted here: rejected
  callbacks in the web process that answered them, and each worker's and
  timer loop's health (``stats``), which executions/heartbeat.py writes to
  the database every few seconds.
* Spans: one trace per execution whose id is the execution UUID; each worker
  joins it through a remote parent derived from that id, so nothing is stored.
* One log line per committed state change (TRAMA_LOG_FORMAT=json makes it JSON).

Nothing here imports the ORM: the hooks get the rows the write path already holds.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import uuid
from contextvars import ContextVar
from datetime import datetime
from typing import Any

from django.db import transaction
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from prometheus_client import Counter

logger = logging.getLogger("trama.executions.state")
_PAUSED = ("SLEEPING", "WAITING")  # statuses whose due time the operator cares about (a wake-up, a deadline)
_log = logging.getLogger("trama.telemetry")

# --- Per-process metrics --------------------------------------------------------------------
# Only what the database does not record lives in process memory: a rejected
# callback leaves no row. It is counted by the web process that answered it.

CALLBACKS_REJECTED = Counter(
    "trama_callbacks_rejected", "Callbacks refused by the receiver, by reason (this process).", ["reason"]
)
_REJECT_REASONS = {
    400: "bad_body",
    403: "invalid_token",
    404: "unknown_execution",
    409: "not_waiting",
    410: "expired",
    200: "duplicate",
}

# --- Worker health (per process) ---------------------------------------------------------------
# What a worker or the timer loop sees and no row records: how long an execution waited in the
# queue, writes lost to a newer claim or retried after a database error, leases found lapsed.
# executions/heartbeat.py writes these counts to the database every few seconds, so /metrics
# shows every process on every machine (docs/metrics.md, "Worker health").

# Enqueued -> claimed (seconds): a backlog-free queue answers in milliseconds.
SCHEDULE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
WORKER_EVENTS = ("fence_conflicts", "db_write_retries", "leases_lapsed", "timer_enqueued")


class ProcessStats:
    """This process's worker-health counters, gauges and the schedule-to-start histogram."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts = dict.fromkeys(WORKER_EVENTS, 0)
        self.gauges: dict[str, float] = {}
        self.schedule = {"n": 0, "sum": 0.0, "le": [0] * len(SCHEDULE_BUCKETS)}

    def count(self, event: str, n: int = 1) -> None:
        with self._lock:
            self.counts[event] += n

    def observe_schedule(self, seconds: float) -> None:
        with self._lock:
            self.schedule["n"] += 1
            self.schedule["sum"] += seconds
            self.schedule["le"] = [
                c + (seconds <= b) for c, b in zip(self.schedule["le"], SCHEDULE_BUCKETS, strict=True)
            ]

    def snapshot(self) -> dict:
        with self._lock:
            return {"counts": dict(self.counts), "gauges": dict(self.gauges), "schedule": dict(self.schedule)}


stats = ProcessStats()


def _fresh_stats_after_fork() -> None:
    global stats
    stats = ProcessStats()  # a forked process starts from zero: its parent's counts are the parent's


os.register_at_fork(after_in_child=_fresh_stats_after_fork)


def claimed(execution) -> None:
    """A worker claimed ``execution``: how long it waited since it was enqueued (both database clock)."""
    if execution.nudged_at is not None:
        stats.observe_schedule(max((execution.db_now - execution.nudged_at).total_seconds(), 0.0))


def worker_event(event: str, n: int = 1) -> None:
    """Count a worker-health event (WORKER_EVENTS) in this process."""
    stats.count(event, n)


def timer_pass(enqueued: int, lapsed: int, lag_seconds: float) -> None:
    """One timer-loop pass enqueued ``enqueued`` executions, ``lapsed`` of them held by a lease that ran out
    (their worker died or stalled: another takes them over); the oldest had been due ``lag_seconds``."""
    stats.count("timer_enqueued", enqueued)
    stats.count("leases_lapsed", lapsed)
    stats.gauges["timer_lag_seconds"] = lag_seconds


# --- Traces -----------------------------------------------------------------------------------

_tracer = trace.get_tracer("trama.executions")
# (trace id, span id) the next span must get; read by ExecutionIdGenerator. 0 = random.
_forced_ids: ContextVar[tuple[int, int]] = ContextVar("trama_forced_ids", default=(0, 0))
# The step attempt whose request is being sent by this thread: (span, async call?).
_open_call: ContextVar[tuple[Any, bool] | None] = ContextVar("trama_open_call", default=None)


class ExecutionIdGenerator(RandomIdGenerator):
    """Random ids, except where a span's id must be derivable from the execution elsewhere.

    The execution's root span and an async attempt's span (which a callback
    links to) get ids computed from the execution UUID, so another process can
    point at them without anything being stored.
    """

    def generate_span_id(self) -> int:
        return _forced_ids.get()[1] or super().generate_span_id()

    def generate_trace_id(self) -> int:
        return _forced_ids.get()[0] or super().generate_trace_id()


def tracing_enabled() -> bool:
    """False until an SDK TracerProvider is set (OTEL_TRACES_EXPORTER=none: never)."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def trace_id_of(execution_id) -> int:
    """The execution's trace id: its UUID as a 128-bit number (the hex of both is the same)."""
    return _uuid(execution_id).int & (2**128 - 1)


def span_id_of(execution_id, what: str) -> int:
    digest = hashlib.sha256(f"{_uuid(execution_id)}:{what}".encode()).digest()
    return int.from_bytes(digest[:8], "big") or 1


def root_context(execution_id) -> Context:
    """A context whose (remote) parent is the execution's root span: every span of the execution hangs off it."""
    parent = SpanContext(
        trace_id_of(execution_id),
        span_id_of(execution_id, "execution"),
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    return trace.set_span_in_context(trace.NonRecordingSpan(parent))


def wait_span_id(execution_id, node: str, attempt: int) -> int:
    return span_id_of(execution_id, f"wait:{node}:{attempt}")


def _uuid(value) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _start_span(name: str, context: Context, ids: tuple[int, int] = (0, 0), **kwargs):
    token = _forced_ids.set(ids)
    try:
        return _tracer.start_span(name, context=context, **kwargs)
    finally:
        _forced_ids.reset(token)


def call_started(execution, call) -> None:
    """Before a step attempt's request is sent: open its span (the ``traceparent`` the service gets)."""
    if not tracing_enabled():
        return
    _close_open_call("abandoned")
    is_async = not hasattr(call, "phase")
    phase = "forward" if is_async else call.phase
    node = execution.definition.spec["nodes"].get(call.node, {})
    attributes = {
        "trama.execution.id": str(execution.pk),
        "trama.definition": execution.definition.name,
        "trama.node.id": call.node,
        "trama.node.type": node.get("type", ""),
        "trama.phase": phase,
        "trama.attempt": call.attempt,
        "trama.step.seq": call.seq,
        "http.request.method": str(call.request.get("method", "")),
    }
    ids = (0, wait_span_id(execution.pk, call.node, call.attempt)) if is_async else (0, 0)
    name = f"{call.node}" if phase == "forward" else f"{call.node} {phase}"
    span = _start_span(name, root_context(execution.pk), ids, kind=SpanKind.CLIENT, attributes=attributes)
    _open_call.set((span, is_async))


def trace_headers() -> dict[str, str]:
    """``traceparent`` (and the other configured propagators' headers) of the attempt being sent."""
    opened = _open_call.get()
    if opened is None:
        return {}
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(opened[0]))
    return carrier


def call_finished(outcome, succeeded: bool) -> None:
    """After the request came back (or failed): outcome and HTTP status on the span, and end it.

    ``succeeded``: whether the answer counts as a success for the request (dispatch.is_success),
    judged by the caller so that this module needs nothing of dispatch (which imports it).
    """
    opened = _open_call.get()
    if opened is None:
        return
    span, is_async = opened
    response = outcome.response
    if response is None:
        result = outcome.failure or "network"
    elif succeeded:
        result = "accepted" if is_async else "succeeded"
    else:
        result = "failed"
    if response is not None:
        span.set_attribute("http.response.status_code", response["status"])
    span.set_attribute("trama.outcome", result)
    if result not in ("accepted", "succeeded"):
        span.set_status(Status(StatusCode.ERROR, outcome.error or result))
    span.end()
    _open_call.set(None)


def _close_open_call(result: str) -> None:
    opened = _open_call.get()
    if opened is not None:
        opened[0].set_attribute("trama.outcome", result)
        opened[0].end()
        _open_call.set(None)


def callback_received(execution_id, node: str, attempt: int, outcome: str) -> None:
    """A callback for an async attempt arrived: a span in the execution's trace, linked to the waiting span."""
    if not tracing_enabled():
        return
    wait = SpanContext(
        trace_id_of(execution_id),
        wait_span_id(execution_id, node, attempt),
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    links = [Link(wait, {"trama.link": "wait"})]
    incoming = trace.get_current_span().get_span_context()
    if incoming.is_valid:
        links.append(Link(incoming, {"trama.link": "request"}))  # the HTTP request span, if Django is instrumented
    attributes = {
        "trama.execution.id": str(execution_id),
        "trama.node.id": node,
        "trama.attempt": attempt,
        "trama.callback.outcome": outcome,
    }
    span = _start_span(
        f"{node} callback", root_context(execution_id), kind=SpanKind.SERVER, links=links, attributes=attributes
    )
    span.end()


def _emit_root_span(execution, status: str, finished_at: datetime | None) -> None:
    """The execution's own span, written once by whoever commits the final status."""
    definition = execution.definition
    start = execution.started_at or execution.created_at
    end = finished_at or start
    ids = (trace_id_of(execution.pk), span_id_of(execution.pk, "execution"))
    span = _start_span(
        f"execution {definition.name}",
        Context(),
        ids,
        start_time=_ns(start),
        attributes={
            "trama.execution.id": str(execution.pk),
            "trama.definition": definition.name,
            "trama.definition.version": definition.version,
            "trama.execution.status": status,
        },
    )
    if status != "SUCCEEDED":
        span.set_status(Status(StatusCode.ERROR, status))
    span.end(end_time=max(_ns(end), _ns(start)))


def _ns(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000_000)


# --- The write path's hook ------------------------------------------------------------------------


def committed(execution, decision, fields: dict) -> None:
    """A decision is being written (call inside the write's transaction, before
    ``execution.status`` is updated): once it commits, log the state change
    and, for a final status, emit the execution's root span. Nothing happens
    for a write that rolls back."""
    log = logger.isEnabledFor(logging.INFO)
    final = fields.get("finished_at") is not None
    root = final and tracing_enabled()
    if not (log or root):
        return
    line = _state_line(execution, decision, fields) if log else None
    transaction.on_commit(lambda: _after_commit(execution, fields, line, root))


def _after_commit(execution, fields: dict, line: tuple | None, root: bool) -> None:
    try:
        if line is not None:
            logger.info(*line[0], extra=line[1])
        if root:
            _emit_root_span(execution, fields["status"], fields.get("finished_at"))
    except Exception:  # telemetry must never break the engine
        _log.warning("telemetry hook failed", exc_info=True)


def _state_line(execution, decision, fields: dict) -> tuple[tuple, dict]:
    """The message and extras of one committed write.

    A write that changes the status is a ``state_change`` line ("RUNNING -> SLEEPING");
    one that keeps it (a step done and the next begun, a wake-up, a deadline moved) is a
    ``progress`` line that says what happened, never "RUNNING -> RUNNING".
    """
    state = decision.state
    changed = execution.status != decision.status
    extra = {
        "event": "state_change" if changed else "progress",
        "execution_id": str(execution.pk),
        "trace_id": _uuid(execution.pk).hex,
        "definition": execution.definition.name,
        "previous_status": execution.status,
        "status": decision.status,
        "node_id": state.get("node"),
        "attempt": state.get("attempt"),
        "phase": state.get("phase"),
        "steps": {str(r.seq): r.fields["status"] for r in decision.steps if "status" in r.fields},
    }
    if state.get("error"):
        extra["error"] = state["error"]
    due = fields.get("due_at") if decision.status in _PAUSED else None
    if due is not None:
        extra["due_at"] = due.isoformat()
    status = f"{execution.status} -> {decision.status}" if changed else f"still {decision.status}"
    happened = _what_happened(decision, extra, final=fields.get("finished_at") is not None)
    return ("execution %s %s%s", str(execution.pk), status, f": {happened}" if happened else ""), extra


def _what_happened(decision, extra: dict, final: bool) -> str:
    """The steps this write closed or opened, then where the execution stands (and when it is due, if paused).

    E.g. ``step 2 (b attempt 1) failed; now at b attempt 2, due <time>``.
    """
    parts = [_step_words(r) for r in decision.steps if "status" in r.fields]
    if not final:
        due = f", due {extra['due_at']}" if "due_at" in extra else ""
        parts.append(f"now at {_position(extra)}{due}")
    return "; ".join(parts)


def _position(extra: dict) -> str:
    phase = "" if extra["phase"] in ("forward", None) else f" {extra['phase']}"
    return f"{extra['node_id']}{phase} attempt {extra['attempt']}"


def _step_words(record) -> str:
    """``step 3 (b compensation attempt 1) succeeded``; a step written earlier and closed now has only its seq here."""
    fields = record.fields
    if "node_id" not in fields:
        return f"step {record.seq} {fields['status']}"
    phase = "" if fields.get("phase") == "forward" else f" {fields['phase']}"
    return f"step {record.seq} ({fields['node_id']}{phase} attempt {fields['attempt']}) {fields['status']}"


def callback_answered(status: int) -> None:
    """The receiver answered a callback with ``status``: count a refusal (and a duplicate) by reason."""
    reason = _REJECT_REASONS.get(status)
    if reason is not None:
        CALLBACKS_REJECTED.labels(reason).inc()


def callback_rejected(reason: str) -> None:
    CALLBACKS_REJECTED.labels(reason).inc()
