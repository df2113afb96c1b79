"""Shared fixtures: an API client holding a real token."""

import pytest
from rest_framework.test import APIClient

from executions.secrets import reset_configured_secrets
from trama_project.models import ApiToken


@pytest.fixture(autouse=True)
def fresh_secrets():
    """Secrets are read from the environment once per process: tests that set TRAMA_SECRET_* get a fresh read."""
    reset_configured_secrets()
    yield
    reset_configured_secrets()


@pytest.fixture
def api(db) -> APIClient:
    _, raw = ApiToken.mint("tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


# --- Test infrastructure: a scriptable HTTP service and real worker processes ---------------
# (see tests/support/)

from tests.support import TestService, WorkerPool  # noqa: E402


@pytest.fixture
def service():
    """A started TestService (the user's HTTP service Trama calls); stopped after the test."""
    svc = TestService().start()
    try:
        yield svc
    finally:
        svc.stop()


@pytest.fixture
def worker_pool(request, transactional_db):
    """A WorkerPool against the test database; every process is stopped after the test.

    Needs PostgreSQL (the workers are other processes). On failure the report gains their logs.
    """
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("worker processes need PostgreSQL (set DATABASE_URL)")
    pool = WorkerPool()
    request.node.stash[_WORKER_POOL_KEY] = pool
    try:
        yield pool
    finally:
        pool.stop_all()


_WORKER_POOL_KEY = pytest.StashKey[WorkerPool]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    pool = item.stash.get(_WORKER_POOL_KEY, None)
    if pool is not None and report.failed and pool.processes:
        report.sections.append((f"worker logs ({report.when})", pool.logs()))


@pytest.fixture(scope="module")
def exporter():
    """Spans of this process, captured in memory (the global provider can be set only once per process)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from trama_project import otel

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = otel.build_provider()
        trace.set_tracer_provider(provider)
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    yield memory
    memory.shutdown()
