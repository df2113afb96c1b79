"""Shared fixtures: an API client holding a real token, test infrastructure, the outside tools."""

import contextlib
import os
import shutil
import socket
import subprocess
from typing import NoReturn

import pytest
from rest_framework.test import APIClient

from definitions.services import definition_by_id
from executions.secrets import reset_configured_secrets
from trama_project.env import env_bool
from trama_project.models import ApiToken


def pytest_configure(config):
    # The suite never runs collectstatic (live_server serves static files itself); WhiteNoise
    # would warn in every test that var/staticfiles is missing.
    config.addinivalue_line("filterwarnings", "ignore:No directory at:UserWarning")


@pytest.fixture(autouse=True)
def fresh_definition_cache():
    """Stored definitions are cached by id per process; a test database reused between tests may
    hand the same id to another definition, which a real database never does."""
    definition_by_id.cache_clear()
    yield
    definition_by_id.cache_clear()


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


@pytest.fixture
def workers(worker_pool, live_server):
    """A qcluster worker and the timer loop running against the test database, as in production; the
    callback URLs they hand out point at pytest-django's live server (the pages' browser tests)."""
    worker_pool.env["TRAMA_PUBLIC_URL"] = live_server.url
    worker_pool.start_worker()
    worker_pool.start_timers()
    return worker_pool


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    pool = item.stash.get(_WORKER_POOL_KEY, None)
    if pool is not None and report.failed and pool.processes:
        report.sections.append((f"worker logs ({report.when})", pool.logs()))


@pytest.fixture
def otlp():
    """A started OTLP/HTTP receiver (tests/support/otlp.py) for spans of real processes."""
    from tests.support.otlp import OtlpReceiver

    receiver = OtlpReceiver().start()
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture(scope="module")
def exporter():
    """Spans of this process, captured in memory (the global provider can be set only once per process)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from executions import tracing

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = tracing.build_provider()
        trace.set_tracer_provider(provider)
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    yield memory
    memory.shutdown()


# --- Outside tools: Chromium and Redis -----------------------------------------------------------
# A test whose tool is missing skips on a developer's machine; in CI (CI=true, set by .ci/run) it
# fails, so a green CI run means those tests really ran.

TEST_REDIS_URL_DEFAULT = "redis://127.0.0.1:6379/11"


def missing_tool(reason: str) -> NoReturn:
    """Skip the test because ``reason``; fail it instead when the CI variable is true."""
    if env_bool("CI", False):
        pytest.fail(f"{reason} (CI is set: a missing tool fails the run instead of skipping)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium() -> str:
    """The path of Debian's chromium (never a browser Playwright downloads)."""
    path = shutil.which("chromium")
    if path is None:
        missing_tool("chromium not found on PATH (apt-get install -y chromium)")
    return path


@pytest.fixture(scope="module")
def browser(request, chromium):
    """Debian's chromium, headless, driven by Playwright (tests/support/browser.py); one per test module."""
    from tests.support.browser import SCREENSHOTS, launch

    with launch(chromium) as browser:
        yield browser
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"\nUI screenshots: {SCREENSHOTS}")


@pytest.fixture
def page(browser, live_server, transactional_db):
    """A page logged in as a staff user, on pytest-django's live server; fails the test on a JavaScript error."""
    from tests.support.browser import staff_page

    with staff_page(browser, live_server.url) as page:
        yield page


@pytest.fixture
def test_redis_url() -> str:
    """A Redis database the tests may flush: TRAMA_TEST_REDIS_URL (default redis://127.0.0.1:6379/11), reachable."""
    import redis

    url = _per_xdist_worker(os.environ.get("TRAMA_TEST_REDIS_URL") or TEST_REDIS_URL_DEFAULT)
    client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        missing_tool(f"no Redis at {url} (TRAMA_TEST_REDIS_URL): {exc}")
    finally:
        client.close()
    return url


def _per_xdist_worker(url: str) -> str:
    """Under pytest-xdist, each worker process flushes a Redis database of its own (gw1: the next number)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    base, _, number = url.rpartition("/")
    if not number.isdigit():
        return url
    return f"{base}/{int(number) + int(worker.removeprefix('gw') or 0)}"


# --- `make run`: manage.py trama_dev in a subprocess ---------------------------------------------


def free_port() -> int:
    """A TCP port nothing listens on right now (the kernel's pick)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def dev_var_dir(tmp_path_factory):
    """TRAMA_VAR_DIR of the trama_dev servers: collectstatic fills it once, later starts reuse it."""
    return tmp_path_factory.mktemp("trama-dev-var")


@pytest.fixture
def make_run(worker_pool, dev_var_dir, monkeypatch):
    """Start `manage.py trama_dev --addr 127.0.0.1:<port>` as `make run` does, against the test database.

    Returns ``start(**env) -> (base_url, process)`` once the server answers /healthz. The process
    is a WorkerPool process: stopped after the test, its output in the report on failure.
    """
    import requests

    from tests.support import wait_until

    monkeypatch.delenv("TRAMA_PUBLIC_URL", raising=False)  # callback URLs must follow the port

    def answers(base_url: str, process) -> bool:
        if process.poll() is not None:
            raise AssertionError(f"trama_dev exited with {process.returncode}:\n{worker_pool.logs()}")
        try:
            return requests.get(f"{base_url}/healthz", timeout=5).status_code == 200
        except requests.ConnectionError:
            return False

    started = []

    def start(**env):
        port = free_port()
        env = {"TRAMA_VAR_DIR": dev_var_dir, "TRAMA_EGRESS_ALLOW": "127.0.0.1,localhost"} | env
        process = worker_pool.start("trama_dev", "--addr", f"127.0.0.1:{port}", **env)
        started.append(process)
        base_url = f"http://127.0.0.1:{port}"
        wait_until(lambda: answers(base_url, process), timeout=90, interval=0.2, message=f"trama_dev on {base_url}")
        return base_url, worker_pool.processes[-1]

    yield start
    # trama_dev stops its children (sessions of their own) on SIGTERM: give it the time it needs,
    # since the pool's SIGKILL after 10 s would leave them running against the test database.
    for process in started:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
