"""trama_run: start an execution and follow (or --drive) it; exit codes say how it ended.

One test runs manage.py as a process to check that errors never show a traceback."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from definitions.services import store_definition
from executions.models import Execution
from tests.support import Reply
from tests.support.commands import fails, fork, run, saga
from tests.support.workers import REPO_ROOT, database_url


def input_file(tmp_path: Path, content: str) -> str:
    path = tmp_path / "input.json"
    path.write_text(content)
    return str(path)


@pytest.mark.django_db(transaction=True)
def test_trama_run_drive_succeeds_with_exit_code_0_and_a_line_per_step(service, egress, tmp_path):
    store_definition(saga(service.url))
    out = run("trama_run", "ship-it", "--input", input_file(tmp_path, '{"order": 7}'), "--drive")
    lines = out.splitlines()
    assert lines[0].startswith("started ") and "(ship-it v1)" in lines[0]
    assert any("reserve #1 succeeded HTTP 200" in line for line in lines)
    assert any("charge #1 succeeded HTTP 200" in line for line in lines)
    assert lines[-1].startswith("SUCCEEDED ")
    execution = Execution.objects.get()
    assert (execution.status, execution.input, execution.created_by) == ("SUCCEEDED", {"order": 7}, "cli")
    assert [r.path for r in service.requests] == ["/reserve", "/charge"]


@pytest.mark.django_db(transaction=True)
def test_trama_run_drive_exits_2_when_the_execution_compensates(service, egress, tmp_path):
    store_definition(saga(service.url))
    service.default("POST", "/charge", Reply(400, {"error": "card declined"}))
    error = fails("trama_run", "ship-it", "--input", input_file(tmp_path, "{}"), "--drive")
    assert error.returncode == 2
    assert "ended COMPENSATED" in str(error)
    assert Execution.objects.get().status == "COMPENSATED"
    assert [(r.method, r.path) for r in service.requests][-1] == ("DELETE", "/reserve")


@pytest.mark.django_db(transaction=True)
def test_trama_run_drive_exits_1_when_the_execution_fails(service, egress):
    source = saga(service.url)
    source["steps"][1]["on_failure"] = "fail"
    store_definition(source)
    service.default("POST", "/charge", Reply(400))
    assert fails("trama_run", "ship-it", "--drive").returncode == 1
    assert Execution.objects.get().status == "FAILED"


@pytest.mark.django_db(transaction=True)
def test_trama_run_drive_honours_sleeps_and_retry_backoff(service, egress):
    source = {"name": "slow", "kind": "graph", "start": "nap", "nodes": {
        "nap": {"type": "sleep", "duration_s": 0.3, "next": "call"},
        "call": {"type": "task", "request": {"method": "POST", "url": f"{service.url}/call"},
                 "retry": {"max_attempts": 2, "backoff_s": 0.2}},
    }}  # fmt: skip
    store_definition(source)
    service.script("POST", "/call", Reply(503))
    out = run("trama_run", "slow", "--drive")
    assert "call #1 failed HTTP 503" in out and "call #2 succeeded HTTP 200" in out
    calls = service.calls("POST", "/call")
    assert calls[1].at - calls[0].at >= 0.15


@pytest.mark.django_db(transaction=True)
def test_trama_run_drive_advances_parallel_branches_too(service, egress):
    store_definition(fork(service.url))
    out = run("trama_run", "fan-out", "--drive", "--timeout", "20")
    assert "<b> b #1 succeeded HTTP 200" in out and "<c> c #1 succeeded HTTP 200" in out
    assert out.splitlines()[-1].startswith("SUCCEEDED ")
    assert sorted(r.path for r in service.requests) == ["/a", "/b", "/c", "/d"]


@pytest.mark.workers
def test_trama_run_follows_an_execution_that_real_workers_advance(service, egress, worker_pool):
    worker_pool.start_worker()
    worker_pool.start_timers()
    store_definition(saga(service.url))
    out = run("trama_run", "ship-it", "--timeout", "60")
    assert "reserve #1 succeeded HTTP 200" in out and out.splitlines()[-1].startswith("SUCCEEDED ")
    assert [r.path for r in service.requests] == ["/reserve", "/charge"]


@pytest.mark.django_db
def test_trama_run_unknown_definition_is_bad_usage():
    error = fails("trama_run", "nope")
    assert (error.returncode, str(error).split(" (")[0]) == (3, "unknown definition 'nope'")
    assert fails("trama_run", "nope", "--version", "2").returncode == 3


@pytest.mark.django_db
def test_trama_run_unknown_version_is_bad_usage(service):
    store_definition(saga(service.url))
    assert "unknown definition 'ship-it' version 9" in str(fails("trama_run", "ship-it", "--version", "9"))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "does not exist"), ("{not json", "is not valid JSON"), ("[1, 2]", "must hold a JSON object")],
)
def test_trama_run_bad_input_file_is_bad_usage_and_starts_nothing(service, tmp_path, content, message):
    store_definition(saga(service.url))
    path = input_file(tmp_path, content) if content is not None else str(tmp_path / "missing.json")
    error = fails("trama_run", "ship-it", "--input", path)
    assert error.returncode == 3 and message in str(error)
    assert not Execution.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_trama_run_from_the_shell_exits_3_without_a_traceback():
    env = os.environ | {"DATABASE_URL": database_url()}
    done = subprocess.run(
        [sys.executable, "manage.py", "trama_run", "missing-flow"], cwd=REPO_ROOT, env=env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert "unknown definition 'missing-flow'" in done.stderr and "Traceback" not in done.stderr
    usage = subprocess.run(
        [sys.executable, "manage.py", "trama_run"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert usage.returncode == 3 and "Traceback" not in usage.stderr
