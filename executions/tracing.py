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

from django.core.exceptions import ImproperlyConfigured
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from executions.telemetry import ExecutionIdGenerator

_configured = False


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
        provider.add_span_processor(BatchSpanProcessor(_exporter(name)))
    trace.set_tracer_provider(provider)
    _configured = True
    _instrument_django()
    return provider


def build_provider() -> TracerProvider:
    """A TracerProvider with Trama's id generator (execution-derived root and wait span ids)."""
    named = os.environ.get("OTEL_SERVICE_NAME") or "service.name=" in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    resource = Resource.create({} if named else {"service.name": "trama"})
    return TracerProvider(resource=resource, id_generator=ExecutionIdGenerator())


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
