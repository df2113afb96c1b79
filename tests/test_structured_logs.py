"""One log line per committed state change; TRAMA_LOG_FORMAT=json makes each a JSON object."""

import json
import logging
from datetime import datetime

import pytest
from django.core.exceptions import ImproperlyConfigured

from executions.models import Execution
from executions.services import start_execution, wake_execution
from tests.support import wait_until
from tests.support.definitions import store
from tests.support.engine import drive
from tests.support.service import Reply
from tests.support.specs import chain, req, retry, sleep, task
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


def _state_lines(caplog) -> list[dict]:
    return [json.loads(JsonFormatter().format(r)) for r in caplog.records if r.name == "trama.executions.state"]


@pytest.mark.django_db(transaction=True)
def test_a_write_that_keeps_the_status_says_what_happened_never_running_to_running(service, settings, caplog):
    settings.TRAMA_EGRESS_ALLOW = ["127.0.0.1"]
    service.script("POST", "/b", Reply(500), Reply(200))
    d = store(chain(service.url, "a", "b", b={"retry": retry(2)}), "a")
    caplog.set_level(logging.INFO, logger="trama.executions.state")
    ex = drive(start_execution(d, {})[0])

    lines = _state_lines(caplog)
    due = lines[1]["due_at"]
    assert [(line["event"], line["message"]) for line in lines] == [
        ("progress", f"execution {ex.pk} still RUNNING: step 1 (a attempt 1) succeeded; now at b attempt 1"),
        (
            "state_change",
            f"execution {ex.pk} RUNNING -> SLEEPING: step 2 (b attempt 1) failed; now at b attempt 2, due {due}",
        ),
        ("state_change", f"execution {ex.pk} SLEEPING -> RUNNING: now at b attempt 2"),
        ("state_change", f"execution {ex.pk} RUNNING -> SUCCEEDED: step 3 (b attempt 2) succeeded"),
    ]
    failed_at = ex.steps.get(seq=2).finished_at
    assert failed_at < datetime.fromisoformat(due) < ex.steps.get(seq=3).started_at  # the back-off's end
    assert all(line["execution_id"] == str(ex.pk) for line in lines)


@pytest.mark.django_db(transaction=True)
def test_a_wake_up_is_logged_as_the_new_due_time_with_the_execution_id(service, settings, caplog):
    settings.TRAMA_EGRESS_ALLOW = ["127.0.0.1"]
    nodes = {"a": task(req("POST", f"{service.url}/a"), next="nap"), "nap": sleep(3600)}
    caplog.set_level(logging.INFO, logger="trama.executions.state")
    ex = drive(start_execution(store(nodes, "a"), {})[0], until={"SLEEPING"})
    caplog.clear()  # only the wake-up's line
    woken = wake_execution(ex.pk)

    [line] = _state_lines(caplog)
    due = woken.due_at.isoformat()
    assert line["message"] == f"execution {ex.pk} still SLEEPING: now at nap attempt 1, due {due}"
    assert (line["event"], line["execution_id"], line["due_at"]) == ("progress", str(ex.pk), due)


@pytest.mark.django_db(transaction=True)
def test_compensation_lines_name_the_phase_and_every_line_names_the_execution(service, settings, caplog):
    settings.TRAMA_EGRESS_ALLOW = ["127.0.0.1"]
    undo = req("DELETE", f"{service.url}/a")
    nodes = {
        "a": task(req("POST", f"{service.url}/a"), next="b", compensation=undo),
        "b": task(req("POST", f"{service.url}/b")),
    }
    service.script("POST", "/b", Reply(400))
    caplog.set_level(logging.INFO, logger="trama.executions.state")
    ex = drive(start_execution(store(nodes, "a"), {})[0])

    assert ex.status == "COMPENSATED"
    messages = [line["message"] for line in _state_lines(caplog)]
    assert messages == [
        f"execution {ex.pk} still RUNNING: step 1 (a attempt 1) succeeded; now at b attempt 1",
        f"execution {ex.pk} RUNNING -> COMPENSATING: step 2 (b attempt 1) failed; now at a compensation attempt 1",
        f"execution {ex.pk} COMPENSATING -> COMPENSATED: step 3 (a compensation attempt 1) succeeded",
    ]


@pytest.mark.django_db
def test_refused_callbacks_leave_no_token_in_the_log_records(caplog, live_server):
    """django.request logs every 4xx with the path (and the request): the token in it is a credential."""
    import uuid
    from datetime import timedelta

    import requests
    from django.utils import timezone

    from executions.callback_tokens import mint_callback_token

    tokens = {
        f"forged-{uuid.uuid4().hex}": 403,
        mint_callback_token(str(uuid.uuid4()), "pay", 1, timezone.now() - timedelta(days=2)): 410,
        mint_callback_token(str(uuid.uuid4()), "pay", 1, timezone.now() + timedelta(hours=1)): 404,
    }
    with caplog.at_level(logging.INFO):
        for token, status in tokens.items():
            answer = requests.post(f"{live_server.url}/api/v1/callbacks/{token}/", json={}, timeout=10)
            assert answer.status_code == status
        wait_until(lambda: len([r for r in caplog.records if r.name == "django.request"]) >= len(tokens))
    request_lines = [r.getMessage() for r in caplog.records if r.name == "django.request"]
    assert request_lines.count("Forbidden: /api/v1/callbacks/<redacted>/") == 1, request_lines
    for record in caplog.records:
        written = JsonFormatter().format(record) + logging.Formatter().format(record)
        assert not any(token in written for token in tokens), written
