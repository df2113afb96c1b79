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
* Spans: one trace per execution; each worker joins it through a remote parent
  derived from the execution's row: its UUID (the trace id) and ``trace_parent``,
  stored when the row is created (a caller's span, a branch's parent execution).
  A pause (sleep, back-off, callback wait, parallel join) is a span made when it
  ends, from the time the state recorded when it began.
* One log line per committed state change (executions/statelog.py; TRAMA_LOG_FORMAT=json makes it JSON).

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
from urllib.parse import urlsplit

from django.db import transaction
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from prometheus_client import Counter

from executions import statelog

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


def stored_parent(execution) -> SpanContext | None:
    """The span the execution's root span is a child of (``Execution.trace_parent``), or None.

    Set when the execution is created: the caller's span for a start request that
    carried one, the parent execution's root span for a branch. Its trace is then
    the execution's trace; without it the trace id is the execution UUID.
    """
    parts = (getattr(execution, "trace_parent", "") or "").split("-")
    if len(parts) != 4:
        return None
    try:
        trace_id, span_id, flags = int(parts[1], 16), int(parts[2], 16), int(parts[3], 16)
    except ValueError:
        return None
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags & TraceFlags.SAMPLED))


def execution_trace_id(execution) -> int:
    """The trace the execution's spans belong to: its stored parent's, else its UUID's."""
    parent = stored_parent(execution)
    return parent.trace_id if parent is not None else trace_id_of(execution.pk)


def root_context(execution) -> Context:
    """A context whose (remote) parent is the execution's root span: every span of the execution hangs off it.

    The sampled flag is the stored parent's (a caller that did not sample keeps
    the execution out too, as W3C parent-based sampling does); else sampled.
    """
    parent = stored_parent(execution)
    flags = parent.trace_flags if parent is not None else TraceFlags(TraceFlags.SAMPLED)
    root = SpanContext(
        execution_trace_id(execution), span_id_of(execution.pk, "execution"), is_remote=True, trace_flags=flags
    )
    return trace.set_span_in_context(trace.NonRecordingSpan(root))


def caller_traceparent(headers) -> str:
    """The caller's span named by a request's trace headers (OTEL_PROPAGATORS; W3C ``traceparent`` by
    default), as a W3C traceparent to store on the execution it starts; "" when there is none."""
    context = trace.get_current_span(propagate.extract(headers)).get_span_context()
    return _traceparent(context.trace_id, context.span_id, context.trace_flags) if context.is_valid else ""


def branch_traceparent(parent) -> str:
    """What a branch execution stores: its root span is a child of the parent execution's root span."""
    root = trace.get_current_span(root_context(parent)).get_span_context()
    return _traceparent(root.trace_id, root.span_id, root.trace_flags)


def _traceparent(trace_id: int, span_id: int, flags: int) -> str:
    return f"00-{trace_id:032x}-{span_id:016x}-{int(flags) & TraceFlags.SAMPLED:02x}"


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


def call_started(execution, call, url: str | None = None) -> None:
    """Before a step attempt's request is sent: open its span (the ``traceparent`` the service gets).

    ``url``: the request's URL as the history records it (secrets masked), for ``server.*``.
    """
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
    } | _server_attributes(url)
    ids = (0, wait_span_id(execution.pk, call.node, call.attempt)) if is_async else (0, 0)
    name = f"{call.node}" if phase == "forward" else f"{call.node} {phase}"
    span = _start_span(name, root_context(execution), ids, kind=SpanKind.CLIENT, attributes=attributes)
    _open_call.set((span, is_async))


def _server_attributes(url: str | None) -> dict:
    """``server.address`` and ``server.port`` (the scheme's default when the URL names none) of a URL."""
    try:
        parts = urlsplit(url or "")
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:  # a port that is no number: the request fails, and its span just lacks these
        return {}
    if not parts.hostname:
        return {}
    return {"server.address": parts.hostname} | ({"server.port": port} if port else {})


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


def callback_received(execution, node: str, attempt: int, outcome: str) -> None:
    """A callback for an async attempt arrived: a span in the execution's trace, linked to the waiting span."""
    if not tracing_enabled():
        return
    execution_id = execution.pk
    wait = SpanContext(
        execution_trace_id(execution),
        wait_span_id(execution_id, node, attempt),
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    links = [Link(wait, {"trama.link": "wait"}), *_request_link()]
    attributes = {
        "trama.execution.id": str(execution_id),
        "trama.node.id": node,
        "trama.attempt": attempt,
        "trama.callback.outcome": outcome,
    }
    span = _start_span(
        f"{node} callback", root_context(execution), kind=SpanKind.SERVER, links=links, attributes=attributes
    )
    span.end()


def _request_link() -> list[Link]:
    """A link to the HTTP request's own span, when Django instrumentation made one."""
    incoming = trace.get_current_span().get_span_context()
    return [Link(incoming, {"trama.link": "request"})] if incoming.is_valid else []


def execution_created(execution) -> None:
    """A start created ``execution``: its ``start <definition>`` span, from the row's creation until it is
    committed and queued, in the execution's trace under the root span (and linked to the request's span)."""
    if not tracing_enabled():
        return
    attributes = {"trama.execution.id": str(execution.pk), "trama.definition": execution.definition.name}
    span = _start_span(
        f"start {execution.definition.name}",
        root_context(execution),
        kind=SpanKind.SERVER,
        links=_request_link(),
        attributes=attributes,
        start_time=_ns(execution.created_at),
    )
    span.end()


def _emit_root_span(execution, status: str, finished_at: datetime | None) -> None:
    """The execution's own span, written once by whoever commits the final status."""
    definition = execution.definition
    start = execution.created_at  # the start request's span is its child: it begins with the execution
    end = finished_at or start
    ids = (execution_trace_id(execution), span_id_of(execution.pk, "execution"))
    parent = stored_parent(execution)
    attributes = {
        "trama.execution.id": str(execution.pk),
        "trama.definition": definition.name,
        "trama.definition.version": definition.version,
        "trama.execution.status": status,
    }
    if execution.parent_id:
        attributes |= {"trama.parent.execution.id": str(execution.parent_id), "trama.branch": execution.branch}
    span = _start_span(
        f"branch {execution.branch}" if execution.parent_id else f"execution {definition.name}",
        trace.set_span_in_context(trace.NonRecordingSpan(parent)) if parent is not None else Context(),
        ids,
        start_time=_ns(start),
        attributes=attributes,
    )
    if status != "SUCCEEDED":
        span.set_status(Status(StatusCode.ERROR, status))
    span.end(end_time=max(_ns(end), _ns(start)))


def _ns(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000_000)


# --- The write path's hooks -----------------------------------------------------------------------


def claimed(execution) -> None:
    """A worker claimed a PENDING execution (the claim's own UPDATE made it RUNNING, already committed).

    No decision is written with it, so ``committed`` never sees this change. Every claim also
    counts how long the execution waited since it was due (``due_before``, which the claim replaced):
    a sleep or a back-off from its end, not from when the timer loop got to it (both database clock).
    """
    due = getattr(execution, "due_before", None)
    if due is not None:
        stats.observe_schedule(max((execution.db_now - due).total_seconds(), 0.0))
    if (execution.state or {}).get("status") != "PENDING" or not statelog.logger.isEnabledFor(logging.INFO):
        return
    try:
        statelog.log_claim(execution, f"{execution_trace_id(execution):032x}")
    except Exception:  # telemetry must never break the engine
        _log.warning("telemetry hook failed", exc_info=True)


def committed(execution, decision, fields: dict) -> None:
    """A decision is being written (call inside the write's transaction, before
    ``execution.status`` and ``execution.state`` are updated to it): once it
    commits, log the state change and emit its spans (a pause it ended; the
    root span for a final status). Nothing happens for a write that rolls back."""
    log = statelog.logger.isEnabledFor(logging.INFO)
    tracing = tracing_enabled()
    if not (log or tracing):
        return
    try:  # read now: the caller moves ``execution`` on to the decision right after this call
        pause = _ended_pause(execution.state or {}, decision.state) if tracing else None
        trace_id = f"{execution_trace_id(execution):032x}"
        line = statelog.state_line(execution, decision, fields, trace_id) if log else None
    except Exception:  # telemetry must never break the engine (a state of an unexpected shape)
        _log.warning("telemetry hook failed", exc_info=True)
        return
    root = tracing and fields.get("finished_at") is not None
    if line is not None or pause is not None or root:
        transaction.on_commit(lambda: _after_commit(execution, fields, line, root, pause))


def _after_commit(execution, fields: dict, line: tuple | None, root: bool, pause: dict | None) -> None:
    try:
        if line is not None:
            statelog.logger.info(*line[0], extra=line[1])
        if pause is not None:
            _emit_pause_span(execution, pause, fields["updated_at"])
        if root:
            _emit_root_span(execution, fields["status"], fields.get("finished_at"))
    except Exception:  # telemetry must never break the engine
        _log.warning("telemetry hook failed", exc_info=True)


def _ended_pause(before: dict, after: dict) -> dict | None:
    """The sleep, retry back-off, callback wait or parallel join that this write ends, if any.

    ``before`` is the state the write replaces. A pause spans processes (it is
    begun by one write and ended by another, maybe elsewhere), so its span is
    made here, at its end, from when the state says it began. A wake or a
    heartbeat changes a pause without ending it.
    """
    if before.get("status") == "SLEEPING" and before.get("sleep"):
        sleep = before["sleep"]
        if (after.get("sleep") or {}).get("since") == sleep.get("since") or not sleep.get("since"):
            return None
        return _pause(before, "sleep" if sleep["kind"] == "node" else "backoff", sleep["since"], sleep["until"])
    if before.get("status") != "WAITING" or after.get("open_seq") == before.get("open_seq"):
        return None
    opened = (before.get("open_step") or {}).get("fields") or {}
    if before.get("wait") and opened.get("started_at"):
        return _pause(before, "wait", opened["started_at"], before["wait"]["deadline"])
    if before.get("join") and opened.get("started_at"):
        return _pause(before, "parallel", opened["started_at"], None)
    return None


def _pause(state: dict, kind: str, since: str, until: str | None) -> dict:
    return {"kind": kind, "node": state.get("node"), "attempt": state.get("attempt"), "phase": state.get("phase"),
            "since": since, "until": until}  # fmt: skip


def _emit_pause_span(execution, pause: dict, ended: datetime) -> None:
    """``<node> sleep|backoff|wait|parallel``: from the pause's beginning to the write that ended it."""
    attributes = {
        "trama.execution.id": str(execution.pk),
        "trama.node.id": pause["node"] or "",
        "trama.attempt": pause["attempt"] or 0,
        "trama.phase": pause["phase"] or "forward",
        "trama.pause.kind": pause["kind"],
    }
    if pause["until"]:
        attributes["trama.pause.until"] = pause["until"]  # when it was due to end (a sleep's end, a wait's deadline)
    start = _ns(datetime.fromisoformat(pause["since"]))
    span = _start_span(f"{pause['node']} {pause['kind']}", root_context(execution), start_time=start,
                       attributes=attributes)  # fmt: skip
    span.end(end_time=max(_ns(ended), start))


def callback_answered(status: int) -> None:
    """The receiver answered a callback with ``status``: count a refusal (and a duplicate) by reason."""
    reason = _REJECT_REASONS.get(status)
    if reason is not None:
        CALLBACKS_REJECTED.labels(reason).inc()


def callback_rejected(reason: str) -> None:
    CALLBACKS_REJECTED.labels(reason).inc()
