"""The examples in examples/ (used by the README walk-through) stay valid and keep working.

The JSON definitions must validate and store through the API; the order flow then runs for real
against examples/order_service.py (started on a free port), card, pix and failing-shipment paths.
"""

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from definitions.validation import validate_definition
from executions.models import Execution
from tests.support.engine import drive, history

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
EXAMPLE_FILES = ["order-flow.json", "order-saga.json"]
DEMO_ADDRESS = "127.0.0.1:8001"  # where the example definitions expect the demo service


def load(name: str, port: int | None = None) -> dict:
    text = (EXAMPLES / name).read_text()
    if port is not None:
        text = text.replace(DEMO_ADDRESS, f"127.0.0.1:{port}")
    return json.loads(text)


@pytest.mark.parametrize("name", EXAMPLE_FILES)
def test_example_definition_validates(name):
    result = validate_definition(load(name))
    assert result.errors == []
    assert result.spec["name"] == name.removesuffix(".json")


def test_order_flow_has_the_documented_shape():
    spec = validate_definition(load("order-flow.json")).spec
    nodes = spec["nodes"]
    assert spec["start"] == "reserve"
    assert {node_id: node["type"] for node_id, node in nodes.items()} == {
        "reserve": "task",
        "route": "switch",
        "pix": "async_task",
        "card": "task",
        "ship": "task",
    }
    assert nodes["route"]["cases"][0]["next"] == "pix" and nodes["route"]["default"] == "card"
    assert nodes["pix"]["timeout_s"] == 60
    assert nodes["reserve"]["compensation"]["method"] == "DELETE"
    assert nodes["card"]["compensation"] is not None
    assert nodes["ship"]["request"]["body"]["fail"] == "{{payload.fail_shipping}}"


@pytest.mark.django_db
@pytest.mark.parametrize("name", EXAMPLE_FILES)
def test_example_definition_stores_through_the_api(api, name):
    source = load(name)
    response = api.post("/api/v1/definitions/", source, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["name"], body["version"], body["kind"]) == (source["name"], 1, source["kind"])
    assert body["source"] == source
    assert api.get(f"/api/v1/definitions/{source['name']}/").status_code == 200


# --- The order flow against the demo service -----------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def order_service():
    """examples/order_service.py on a free port; yields the port."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "order_service.py"), str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError(f"order service did not start: {process.communicate()[0]}") from None
            time.sleep(0.05)
    try:
        yield port
    finally:
        process.terminate()
        process.wait(timeout=5)


@pytest.fixture
def flow(api, order_service, settings):
    settings.TRAMA_EGRESS_ALLOW = ["127.0.0.1"]
    response = api.post("/api/v1/definitions/", load("order-flow.json", order_service), format="json")
    assert response.status_code == 201, response.json()
    return order_service


def start(api, **payload):
    order = {"orderId": "A-1", "method": "card", "amount": 42, "fail_shipping": False} | payload
    response = api.post("/api/v1/executions/", {"definition": "order-flow", "input": order}, format="json")
    assert response.status_code == 202, response.json()
    return Execution.objects.get(pk=response.json()["id"])


@pytest.mark.django_db(transaction=True)
def test_order_flow_by_card_succeeds(api, flow):
    execution = drive(start(api))
    assert execution.status == "SUCCEEDED", execution.error
    assert [h[:2] for h in history(execution)] == [
        ("reserve", "forward"),
        ("route", "forward"),
        ("card", "forward"),
        ("ship", "forward"),
    ]
    assert execution.output["tracking"].startswith("TRK-")


@pytest.mark.django_db(transaction=True)
def test_order_flow_failing_shipment_compensates_in_reverse_order(api, flow):
    execution = drive(start(api, fail_shipping=True))
    assert execution.status == "COMPENSATED", execution.error
    assert [(*h[:2], h[3]) for h in history(execution)][3:] == [
        ("ship", "forward", "failed"),
        ("card", "compensation", "succeeded"),
        ("reserve", "compensation", "succeeded"),
    ]
    urls = [step.request["url"] for step in execution.steps.filter(phase="compensation").order_by("seq")]
    charge = execution.steps.get(node_id="card", phase="forward").response_body["charge"]
    reservation = execution.steps.get(node_id="reserve", phase="forward").response_body["id"]
    assert urls[0].endswith(f"/payments/charges/{charge}")
    assert urls[1].endswith(f"/inventory/reservations/{reservation}")


@pytest.mark.django_db(transaction=True)
def test_order_flow_by_pix_waits_for_the_demo_services_callback(api, flow, live_server, settings):
    settings.TRAMA_PUBLIC_URL = live_server.url  # the demo service calls back to this test's server
    execution = drive(start(api, method="pix"), until={"WAITING"})
    assert execution.current_node == "pix"
    execution = drive(execution)
    assert execution.status == "SUCCEEDED", execution.error
    pix = execution.steps.get(node_id="pix")
    assert (pix.response_status, pix.detail["callback"]) == (202, {"status": "succeeded", "output": {"paid": True}})
