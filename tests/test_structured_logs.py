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
from trama_project.logging import JsonFormatter, PlainFormatter, formatter_from_env


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
    # claimed -> a done -> b attempt 1 fails, back-off -> b attempt 2 -> succeeded. A line that closes
    # a step names that step; next_* (and a line that closes none) say where the execution goes.
    assert [(line["status"], line["node_id"], line["attempt"]) for line in lines] == [
        ("RUNNING", "a", 1),
        ("RUNNING", "a", 1),
        ("SLEEPING", "b", 1),
        ("RUNNING", "b", 2),
        ("SUCCEEDED", "b", 2),
    ]
    claim, a_done, b_failed = lines[:3]
    assert (claim["event"], claim["previous_status"], claim["steps"]) == ("state_change", "PENDING", {})
    assert (a_done["steps"], a_done["next_node_id"], a_done["next_attempt"]) == ({"1": "succeeded"}, "b", 1)
    assert (b_failed["steps"], b_failed["next_node_id"], b_failed["next_attempt"]) == ({"2": "failed"}, "b", 2)
    # Why attempt 1 failed is on its own line, not only on the last one.
    assert b_failed["error"] == {"failure": "status", "message": "HTTP 500"}
    assert "error" not in lines[-1] and "next_node_id" not in lines[-1]
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
    due = lines[2]["due_at"]
    queued = lines[0]["queued_s"]
    assert [(line["event"], line["message"]) for line in lines] == [
        ("state_change", f"execution {ex.pk} PENDING -> RUNNING: claimed after {queued:.3f}s queued"),
        ("progress", f"execution {ex.pk} still RUNNING: step 1 (a attempt 1) succeeded; now at b attempt 1"),
        (
            "state_change",
            f"execution {ex.pk} RUNNING -> SLEEPING: step 2 (b attempt 1) failed: HTTP 500;"
            f" now at b attempt 2, due {due}",
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
    assert messages[1:] == [
        f"execution {ex.pk} still RUNNING: step 1 (a attempt 1) succeeded; now at b attempt 1",
        f"execution {ex.pk} RUNNING -> COMPENSATING: step 2 (b attempt 1) failed: HTTP 400;"
        " now at a compensation attempt 1",
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


@pytest.mark.django_db(transaction=True)
def test_branch_lines_carry_the_parent_execution_and_the_branch(service, settings, caplog):
    from tests.test_parallel import drive_all

    settings.TRAMA_EGRESS_ALLOW = ["127.0.0.1"]
    nodes = (
        {"fork": {"type": "parallel", "branches": ["x", "y"], "next": None}}
        | chain(service.url, "x")
        | chain(service.url, "y")
    )
    caplog.set_level(logging.INFO, logger="trama.executions.state")
    parent = drive_all(start_execution(store(nodes, "fork"), {})[0])
    assert parent.status == "SUCCEEDED"

    lines = _state_lines(caplog)
    branches = {str(b.pk): b.branch for b in parent.branches.all()}
    branch_lines = [line for line in lines if line["execution_id"] in branches]
    # each branch: its claim, and the write that closes its one step and ends it
    assert sorted((line["branch"], line["status"]) for line in branch_lines) == [
        ("x", "RUNNING"), ("x", "SUCCEEDED"), ("y", "RUNNING"), ("y", "SUCCEEDED")
    ]  # fmt: skip
    assert all(line["parent_execution_id"] == str(parent.pk) for line in branch_lines)
    assert all(line["branch"] == branches[line["execution_id"]] for line in branch_lines)
    assert all(line["trace_id"] == parent.pk.hex for line in branch_lines)  # the parent's trace
    assert not any("parent_execution_id" in line for line in lines if line["execution_id"] == str(parent.pk))


def test_the_text_format_names_the_execution_a_record_is_about():
    """The engine's warnings carry the execution only as an extra: the text line must not drop it."""
    formatter = PlainFormatter("%(levelname)s %(name)s %(message)s")
    lost = logging.LogRecord("trama.executions", logging.WARNING, __file__, 1, "lost the execution", (), None)
    lost.execution_id = "9933e7"
    assert formatter.format(lost) == "WARNING trama.executions lost the execution [execution_id=9933e7]"
    named = logging.LogRecord("trama.executions.state", logging.INFO, __file__, 1, "execution %s ok", ("9933e7",), None)
    named.execution_id = "9933e7"
    assert formatter.format(named) == "INFO trama.executions.state execution 9933e7 ok"
    branch = logging.LogRecord("trama.executions.state", logging.INFO, __file__, 1, "execution %s ok", ("b1",), None)
    branch.execution_id, branch.parent_execution_id = "b1", "p1"
    assert formatter.format(branch).endswith("execution b1 ok [parent_execution_id=p1]")
    plain = logging.LogRecord("django", logging.INFO, __file__, 1, "no execution here", (), None)
    assert formatter.format(plain) == "INFO django no execution here"
