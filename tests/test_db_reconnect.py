"""A worker whose database connection drops mid-step reconnects and writes, instead of sending the call again."""

import psycopg
import pytest
from django.db import connection

from executions.services import advance_execution, start_execution
from tests.support.definitions import store
from tests.support.engine import history
from tests.support.service import Reply
from tests.support.specs import req, task
from tests.support.workers import database_url


@pytest.mark.django_db(transaction=True)
def test_connection_cut_during_a_call_is_retried_and_the_call_is_not_repeated(service, settings):
    settings.TRAMA_EGRESS_ALLOW = ["127.0.0.1"]
    definition = store(
        {"a": task(req("POST", f"{service.url}/a"), next="b"), "b": task(req("POST", f"{service.url}/b"))}, "a"
    )
    execution, _ = start_execution(definition, {})
    connection.ensure_connection()
    worker_backend = connection.connection.info.backend_pid

    def cut_the_worker_connection(_request):
        # While the worker waits for this answer, its database session is killed.
        with psycopg.connect(database_url().replace("postgres://", "postgresql://"), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [worker_backend])
        return {"ok": True}

    service.script("POST", "/a", Reply(200, body=cut_the_worker_connection))
    advance_execution(execution.pk)

    execution.refresh_from_db()
    assert execution.status == "SUCCEEDED"
    assert len(service.calls("POST", "/a")) == 1  # written after reconnecting: never sent twice
    assert len(service.calls("POST", "/b")) == 1
    assert history(execution) == [("a", "forward", 1, "succeeded"), ("b", "forward", 1, "succeeded")]
