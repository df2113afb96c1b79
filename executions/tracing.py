"""OpenTelemetry SDK setup, from the standard OTEL_* environment variables only.

Called once per process from ``ExecutionsConfig.ready()``, so the web process, every qcluster worker
and the timer loop are set up alike. ``OTEL_TRACES_EXPORTER`` picks the
exporters (comma-separated): ``otlp`` (HTTP/protobuf; OTEL_EXPORTER_OTLP_*
configure it), ``console``, or ``none`` — the default here, where no SDK is set
up at all and the engine's tracing hooks return at their first line.

The sampler (OTEL_TRACES_SAMPLER), batch sizes (OTEL_BSP_*), propagators
(OTEL_PROPAGATORS) and resource (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES)
are read by the SDK itself. Django requests get server spans through
opentelemetry-instrumentation-django unless OTEL_PYTHON_DJANGO_INSTRUMENT=False.
"""

from __future__ import annotations

import os
from multiprocessing import util as multiprocessing_util

from django.core.exceptions import ImproperlyConfigured
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from executions.telemetry import ExecutionIdGenerator
from trama_project.logging import redact

_configured = False
FLUSH_PRIORITY = 10  # after executions.inflight.DRAIN_PRIORITY: the executions in flight end first


def exporter_names() -> list[str]:
    raw = os.environ.get("OTEL_TRACES_EXPORTER", "none")
    names = [n.strip().lower() for n in raw.split(",") if n.strip()]
    return [] if names in ([], ["none"]) else names


def configure_from_env() -> TracerProvider | None:
    """Set the global TracerProvider if OTEL_TRACES_EXPORTER asks for one; None when tracing is off."""
    global _configured
    names = exporter_names()
    if _configured or not names:
        return None
    provider = build_provider()
    for name in names:
        provider.add_span_processor(RedactCallbackTokens(BatchSpanProcessor(_exporter(name))))
    trace.set_tracer_provider(provider)
    _configured = True
    multiprocessing_util.register_after_fork(provider, _flush_at_child_exit)
    _instrument_django()
    return provider


def _flush_at_child_exit(provider: TracerProvider) -> None:
    """In a multiprocessing child (django-q's workers): export the buffered spans as it exits.

    Such a child ends with os._exit(), so neither atexit nor the provider's own
    shutdown hook runs; multiprocessing's finalizers do (registered here, after
    the fork: the child starts with an empty registry). gunicorn's workers flush
    in deploy/gunicorn.conf.py; other processes at exit, through the SDK.
    """
    multiprocessing_util.Finalize(provider, provider.force_flush, exitpriority=FLUSH_PRIORITY)


def build_provider() -> TracerProvider:
    """A TracerProvider with Trama's id generator (execution-derived root and wait span ids)."""
    named = os.environ.get("OTEL_SERVICE_NAME") or "service.name=" in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    resource = Resource.create({} if named else {"service.name": "trama"})
    return TracerProvider(resource=resource, id_generator=ExecutionIdGenerator())


class RedactCallbackTokens(SpanProcessor):
    """Hands ``inner`` each ended span with callback tokens taken out of its name and attributes.

    The Django server span of ``POST /api/v1/callbacks/{token}/`` records the path
    (``http.target``, ``url.path``, ``http.url``...), and the token there is a
    credential. The instrumentation sets those attributes more than once while the
    request runs, so the span is cleaned when it ends, before any exporter sees it.
    """

    def __init__(self, inner: SpanProcessor):
        self.inner = inner

    def on_start(self, span: Span, parent_context=None) -> None:
        self.inner.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        self.inner.on_end(_redacted(span))

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


def _redacted(span: ReadableSpan) -> ReadableSpan:
    attributes = dict(span.attributes or {})
    dirty = {k: redact(v) for k, v in attributes.items() if isinstance(v, str) and "/callbacks/" in v}
    if not dirty and "/callbacks/" not in span.name:
        return span
    return ReadableSpan(
        name=redact(span.name),
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=attributes | dirty,
        events=span.events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def _exporter(name: str) -> SpanExporter:
    if name == "console":
        return ConsoleSpanExporter()
    if name == "otlp":
        return _otlp_exporter()
    raise ImproperlyConfigured(f"OTEL_TRACES_EXPORTER: unknown exporter {name!r} (use otlp, console or none)")


def _otlp_exporter() -> SpanExporter:
    protocol = os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    )
    try:
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as exc:
        raise ImproperlyConfigured(f"OTEL_TRACES_EXPORTER=otlp ({protocol}) needs its exporter package: {exc}")
    return OTLPSpanExporter()


def _instrument_django() -> None:
    try:
        from opentelemetry.instrumentation.django import DjangoInstrumentor
    except ImportError:  # optional: spans of the engine do not need it
        return
    instrumentor = DjangoInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()
