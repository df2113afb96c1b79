"""Property-based fuzzing of the HTTP API against its own OpenAPI schema (schemathesis).

Every operation in ``/api/schema/`` gets generated requests (valid and not),
sent in-process through the real WSGI application with a real API token. Each
answer must not be a 5xx, must use a status code the schema documents, and
must match the documented body schema and content type. Bounded and
deterministic: at most ``MAX_EXAMPLES`` examples per operation, a fixed seed
(``derandomize``), no example database, so ``make test`` stays fast and stable.

schemathesis' own ``schema.parametrize()`` does not run under pytest 9 (it
rewrites a node attribute pytest 9 removed), so each operation is a plain
parametrized test that runs the operation's Hypothesis strategy itself.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.definitions import store
from tests.support.specs import req, task
from trama_project.models import ApiToken
from trama_project.wsgi import application

MAX_EXAMPLES = 25
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

# Fetched from the running application, as a client would (no database needed to serve it).
SCHEMA = schemathesis.openapi.from_wsgi("/api/schema/", application)
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]


@pytest.fixture
def in_test_transaction(db):
    """Let the WSGI app run inside the test's transaction.

    As Django's own test client does, the app must not close the database
    connection at the end of each request: it holds the test's transaction.
    """
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    # Something for the read operations to find besides 404s.
    store({"a": task(req("POST", "https://example.com/a"))}, "a", name="fuzz")
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def bearer(db) -> dict[str, str]:
    _, raw = ApiToken.mint("fuzz")
    return {"Authorization": f"Bearer {raw}"}


def test_the_schema_lists_every_public_operation():
    labels = {operation.label for operation in OPERATIONS}
    for expected in ("POST /api/v1/definitions/", "POST /api/v1/executions/", "GET /api/v1/executions/{id}/steps/"):
        assert expected in labels, sorted(labels)


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda operation: operation.label)
def test_every_answer_conforms_to_the_schema_and_none_is_a_server_error(operation, bearer, in_test_transaction):
    @given(case=operation.as_strategy())
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def answers_conform(case):
        case.call_and_validate(headers=bearer, checks=CHECKS)

    answers_conform()
