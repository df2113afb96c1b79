"""One log line per committed state change; TRAMA_LOG_FORMAT=json makes each a JSON object."""

import json
import logging

import pytest
from django.core.exceptions import ImproperlyConfigured

from executions.models import Execution
from executions.services import start_execution
from tests.engine_support import chain, drive, retry, store
from tests.support import wait_until
from tests.support.service import Reply
from trama_project.logging import JsonFormatter, formatter_from_env


def test_json_formatter_writes_one_object_per_line_with_the_extras():
    record = logging.LogRecord("trama.x", logging.INFO, __file__, 1, "two\nlines %s", ("here",), None)
    record.execution_id, record.attempt = "e1", 2
    line = JsonFormatter().format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["message"] == "two\nlines here"
    assert (parsed["level"], parsed["logger"], parsed["execution_id"], parsed["attempt"]) == (
        "INFO",
        "trama.x",
        "e1",
        2,
    )


def test_log_format_fails_loudly_on_an_unknown_value(monkeypatch):
    monkeypatch.setenv("TRAMA_LOG_FORMAT", "JSON")
    assert formatter_from_env() == "json"
    monkeypatch.delenv("TRAMA_LOG_FORMAT")
    assert formatter_from_env() == "plain"
    monkeypatch.setenv("TRAMA_LOG_FORMAT", "xml")
    with pytest.raises(ImproperlyConfigured):
        formatter_from_env()


@pytest.mark.django_db(transaction=True)
def test_every_state_change_is_one_line_with_execution_node_and_attempt(service, settings, caplog):
    settings.TRAMA_EGRESS_ALLOW = ["127.0.0.1"]
    service.script("POST", "/b", Reply(500), Reply(200))
    d = store(chain(service.url, "a", "b", b={"retry": retry(2)}), "a")
    caplog.set_level(logging.INFO, logger="trama.executions.state")
    ex = drive(start_execution(d, {})[0])

    lines = [json.loads(JsonFormatter().format(r)) for r in caplog.records if r.name == "trama.executions.state"]
    assert {line["execution_id"] for line in lines} == {str(ex.pk)}
    assert all(line["trace_id"] == ex.pk.hex for line in lines)
    # a done -> b attempt 1 fails, back-off -> b attempt 2 -> succeeded
    assert [(line["status"], line["node_id"], line["attempt"]) for line in lines] == [
        ("RUNNING", "b", 1),
        ("SLEEPING", "b", 2),
        ("RUNNING", "b", 2),
        ("SUCCEEDED", "b", 2),
    ]
    assert lines[0]["steps"] and lines[1]["steps"] == {"2": "failed"}
    assert lines[-1]["previous_status"] == "RUNNING"


@pytest.mark.workers
def test_a_worker_with_json_logs_writes_json_state_lines(service, worker_pool, settings):
    settings.TRAMA_EGRESS_ALLOW = ["127.0.0.1"]
    worker_pool.start_worker(TRAMA_WORKERS=1, TRAMA_LOG_FORMAT="json")
    ex, _ = start_execution(store(chain(service.url, "a", "b"), "a"), {})
    wait_until(lambda: Execution.objects.get(pk=ex.pk).status == "SUCCEEDED", timeout=30)

    def state_lines() -> list[dict]:
        complete = worker_pool.processes[0].stderr_path.read_text().split("\n")[:-1]  # not a line half written
        lines = [json.loads(line) for line in complete if line.startswith("{")]
        return [line for line in lines if (line.get("event"), line.get("execution_id")) == ("state_change", str(ex.pk))]

    # The last line is written right after the commit the status shows: wait for it, not for a while.
    wait_until(lambda: any(line["status"] == "SUCCEEDED" for line in state_lines()), timeout=30)
    ours = state_lines()
    assert [(line["status"], line["node_id"], line["attempt"]) for line in ours][-1] == ("SUCCEEDED", "b", 1)
    assert all(line["logger"] == "trama.executions.state" and "ts" in line for line in ours)
