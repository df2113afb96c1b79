"""The payment-authorization and data-pipeline examples run for real against their demo services.

Each demo service (examples/finance_service.py, examples/pipeline_service.py) is started as
its own process on a free port; the definition is stored with its URLs pointed there and
executions are driven in-process by the real worker code (tests.support.engine.drive).
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from definitions.services import store_definition
from definitions.validation import validate_definition
from executions.models import Execution
from executions.services import start_execution
from tests.support.engine import drive, history

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
FINANCE_ADDRESS, PIPELINE_ADDRESS = "127.0.0.1:8002", "127.0.0.1:8003"


def load(name: str, address: str | None = None, port: int | None = None) -> dict:
    text = (EXAMPLES / name).read_text()
    if address and port:
        text = text.replace(address, f"127.0.0.1:{port}")
    return json.loads(text)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run_service(script: str, **env: str):
    """Start examples/<script> on a free port; returns (process, port) once it accepts connections."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLES / script), str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=os.environ | env,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, port
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError(f"{script} did not start: {process.communicate()[0]}") from None
            time.sleep(0.05)


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(timeout=5)


def responses(execution: Execution, node: str, phase: str = "forward") -> list[int]:
    steps = execution.steps.filter(node_id=node, phase=phase).order_by("seq")
    return list(steps.values_list("response_status", flat=True))


@pytest.mark.parametrize("name", ["payment-authorization.json", "data-pipeline.json"])
def test_usecase_definition_validates(name):
    result = validate_definition(load(name))
    assert result.errors == []
    assert result.spec["name"] == name.removesuffix(".json")


# --- payment-authorization: async authorization, switch on the callback, settlement, ledger -----------


@pytest.fixture
def payments(transactional_db, settings, live_server):
    """The finance demo service (callback after 0.2 s) and the stored payment-authorization definition."""
    settings.TRAMA_EGRESS_ALLOW = ["127.0.0.1"]
    settings.TRAMA_PUBLIC_URL = live_server.url  # the demo service calls back to this test's server
    process, port = _run_service("finance_service.py", FINANCE_SERVICE_CALLBACK_DELAY="0.2")
    try:
        yield store_definition(load("payment-authorization.json", FINANCE_ADDRESS, port))
    finally:
        _stop(process)


def pay(definition, amount: float, fail_ledger: bool = False) -> Execution:
    payload = {"account": "ACC-1", "amount": amount, "fail_ledger": fail_ledger}
    execution, _ = start_execution(definition, payload)
    return drive(execution, timeout=20)


def test_approved_payment_settles_books_and_notifies(payments):
    execution = pay(payments, 120)
    assert execution.status == "SUCCEEDED", execution.error
    assert [h[0] for h in history(execution)] == [
        "hold", "authorize", "decide", "settle", "ledger", "notify_settled", "done",
    ]  # fmt: skip
    authorize = execution.steps.get(node_id="authorize")
    assert authorize.detail["callback"]["output"]["decision"] == "approved"
    assert execution.steps.get(node_id="decide").detail["next"] == "settle"
    assert execution.output["authorization"] == authorize.detail["callback"]["output"]["authorization"]
    assert execution.output["settlement"].startswith("stl-") and execution.output["ledger_entry"].startswith("le-")


def test_declined_payment_notifies_and_releases_the_hold(payments):
    execution = pay(payments, 9000)
    assert execution.status == "COMPENSATED", execution.error
    assert (execution.error["node"], execution.error["failure"]) == ("declined", "fail_node")
    assert execution.error["error"]["reason"] == "authorization declined"
    assert "above limit" in execution.error["error"]["detail"]
    steps = [(node, phase, status) for node, phase, _, status in history(execution)]
    assert steps[2:] == [
        ("decide", "forward", "succeeded"),
        ("notify_declined", "forward", "succeeded"),
        ("declined", "forward", "failed"),
        ("authorize", "compensation", "succeeded"),
        ("hold", "compensation", "succeeded"),
    ]
    assert not execution.steps.filter(node_id__in=["settle", "ledger"]).exists()
    hold_id = execution.steps.get(node_id="hold", phase="forward").response_body["hold"]
    release = execution.steps.get(node_id="hold", phase="compensation")
    assert (release.request["method"], release.response_body) == ("DELETE", {"released": hold_id})


def test_ledger_failure_reverses_the_settlement_then_releases_the_hold(payments):
    execution = pay(payments, 120, fail_ledger=True)
    assert execution.status == "COMPENSATED", execution.error
    assert execution.error["node"] == "ledger" and execution.error["message"] == "HTTP 422"
    assert responses(execution, "ledger") == [422]  # a 4xx is final: no retry
    compensations = [node for node, phase, _, _ in history(execution) if phase == "compensation"]
    assert compensations == ["settle", "authorize", "hold"]
    settlement = execution.steps.get(node_id="settle", phase="forward").response_body["settlement"]
    assert execution.steps.get(node_id="settle", phase="compensation").response_body == {"reversed": settlement}


# --- data-pipeline: retries on transient 503s, compensation of partial completions -----------------------


@pytest.fixture
def pipeline_service(request):
    """The pipeline demo service; its transformer fails the first N calls per batch (param, default 2)."""
    flaky = getattr(request, "param", 2)
    process, port = _run_service("pipeline_service.py", PIPELINE_SERVICE_FLAKY=str(flaky))
    try:
        yield port
    finally:
        _stop(process)


@pytest.fixture
def pipeline(transactional_db, settings, pipeline_service):
    settings.TRAMA_EGRESS_ALLOW = ["127.0.0.1"]
    return store_definition(load("data-pipeline.json", PIPELINE_ADDRESS, pipeline_service))


def run_pipeline(definition, fail_load: bool = False) -> Execution:
    payload = {"source": "s3://raw/orders/2026-11-25", "rows": 1200, "table": "orders_daily", "fail_load": fail_load}
    execution, _ = start_execution(definition, payload)
    return drive(execution, timeout=20)


def test_pipeline_retries_transient_503s_and_publishes(pipeline):
    execution = run_pipeline(pipeline)
    assert execution.status == "SUCCEEDED", execution.error
    assert responses(execution, "transform") == [503, 503, 201]
    assert [h[2] for h in history(execution) if h[0] == "transform"] == [1, 2, 3]
    assert [h[0] for h in history(execution) if h[3] == "succeeded"] == ["extract", "transform", "load", "publish"]
    assert execution.output["publication"].startswith("pub-")


@pytest.mark.parametrize("pipeline_service", [10], indirect=True)
def test_pipeline_gives_up_after_max_attempts_and_discards_the_extract(pipeline):
    execution = run_pipeline(pipeline)
    assert execution.status == "COMPENSATED", execution.error
    assert responses(execution, "transform") == [503, 503, 503, 503]  # max_attempts 4
    assert [(h[0], h[1]) for h in history(execution)][-1] == ("extract", "compensation")
    assert not execution.steps.filter(node_id__in=["load", "publish"]).exists()


def test_pipeline_load_failure_compensates_partial_work_newest_first(pipeline):
    execution = run_pipeline(pipeline, fail_load=True)
    assert execution.status == "COMPENSATED", execution.error
    assert responses(execution, "load") == [422]
    undo = [(node, status) for node, phase, _, status in history(execution) if phase == "compensation"]
    assert undo == [("transform", "succeeded"), ("extract", "succeeded")]
    job = execution.steps.get(node_id="transform", phase="forward", status="succeeded").response_body["job"]
    assert execution.steps.get(node_id="transform", phase="compensation").response_body == {"deleted": job}
