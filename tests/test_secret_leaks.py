"""A secret holding ``"``, ``\\`` and a non-ASCII letter never reaches what Trama keeps or shows.

Real executions send ``{{secrets.API_KEY}}`` in a header, the URL, the query and the
body to a service that echoes all of it back (as JSON, as text, in its response
headers and in a callback), then fail and compensate; another one puts
``{{secrets.HOST}}`` in the URL's host, which the egress error quotes. Then the
steps API, the Step and Execution rows, the captured logs and the spans are searched.

The search looks for two fragments of each secret (``Tr4ma`` and ``Zq7w``, any case)
rather than the secret itself: they survive every encoding a leak could take (JSON
escapes, percent-encoding, lower-cased IDNA host names), so a leak in any form is caught.
"""

from __future__ import annotations

import json
import logging

import pytest
import requests

from definitions.services import store_definition
from executions.models import Execution, Step
from executions.services import start_execution
from tests.support import Reply
from tests.support.engine import drive
from tests.support.service import Callback

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = 'Tr4ma"k3y\\Zq7w-é'
HOST_SECRET = "Tr4ma-Hôst-Zq7w"  # a valid host label: lower-cased and IDNA-encoded on the way out
FRAGMENTS = ("tr4ma", "zq7w")


@pytest.fixture
def secrets_set(monkeypatch, settings, live_server, caplog, exporter):
    monkeypatch.setenv("TRAMA_SECRET_API_KEY", SECRET)
    monkeypatch.setenv("TRAMA_SECRET_HOST", HOST_SECRET)
    settings.TRAMA_EGRESS_ALLOW = ["127.0.0.1"]
    settings.TRAMA_PUBLIC_URL = live_server.url
    caplog.set_level(logging.DEBUG)
    exporter.clear()
    return exporter


def leaked(text: str) -> list[str]:
    lowered = text.lower()
    return [fragment for fragment in FRAGMENTS if fragment in lowered]


def echo(recorded) -> dict:
    """Everything the service received, the secret included, with the secret as a key as well."""
    return {
        "headers": dict(recorded.headers),
        "query": recorded.query,
        "body": recorded.body,
        "keyed": {recorded.header("X-Key"): "value"},
    }


def echoing(status: int) -> Reply:
    return Reply(status, echo, headers={"X-Echo-Key": SECRET, "Set-Cookie": f"key={SECRET}; Path=/"})


def secret_request(method: str, url: str) -> dict:
    return {
        "method": method,
        "url": url + "?token={{secrets.API_KEY}}",
        "headers": {"Authorization": "Bearer {{secrets.API_KEY}}", "X-Key": "{{secrets.API_KEY}}"},
        "query": {"k": "{{secrets.API_KEY}}"},
        "body": {"key": "{{secrets.API_KEY}}", "nested": ["key is {{secrets.API_KEY}}!"]},
    }


def echoing_flow(base: str) -> dict:
    """json (JSON echo) -> text (echo as text) -> pay (async, the callback echoes) -> refuse (500 echo): compensated."""
    pay = secret_request("POST", f"{base}/pay") | {"success_status": [202]}
    return {
        "name": "leaky",
        "kind": "graph",
        "start": "json",
        "nodes": {
            "json": {"type": "task", "request": secret_request("POST", f"{base}/json"), "next": "text",
                     "compensation": secret_request("DELETE", f"{base}/json")},
            "text": {"type": "task", "request": secret_request("POST", f"{base}/text"), "next": "pay"},
            "pay": {"type": "async_task", "request": pay, "timeout_s": 30, "next": "refuse"},
            "refuse": {"type": "task", "request": secret_request("POST", f"{base}/fail")},
        },
    }  # fmt: skip


def host_flow() -> dict:
    request = {"method": "GET", "url": "http://{{secrets.HOST}}.invalid/orders"}
    return {
        "name": "leaky-host",
        "kind": "graph",
        "start": "call",
        "nodes": {"call": {"type": "task", "request": request}},
    }


def run_executions(service) -> tuple[Execution, Execution]:
    service.default("POST", "/json", echoing(200))
    service.default("DELETE", "/json", echoing(200))
    service.default("POST", "/text", Reply(200, lambda r: f"you sent {json.dumps(r.body)} and {r.header('X-Key')}"))
    callback = Callback(lambda r: {"status": "succeeded", "output": echo(r)})
    service.default("POST", "/pay", Reply(202, {"accepted": r"\o/"}, callback=callback))
    service.default("POST", "/fail", echoing(500))
    echoed = drive(start_execution(store_definition(echoing_flow(service.url)), {"id": 7})[0])
    unreachable = drive(start_execution(store_definition(host_flow()), {})[0])
    assert (echoed.status, unreachable.status) == ("COMPENSATED", "COMPENSATED")
    return echoed, unreachable


def test_the_services_received_the_secret_so_there_was_something_to_leak(service, secrets_set):
    run_executions(service)
    seen = service.calls("POST", "/json")[0]
    assert seen.header("X-Key") == SECRET and seen.query == {"token": SECRET, "k": SECRET}
    assert seen.body == {"key": SECRET, "nested": [f"key is {SECRET}!"]}
    assert service.wait_for_callbacks(1)[0][0] == 202


def test_the_history_keeps_every_echo_masked(service, secrets_set):
    echoed, unreachable = run_executions(service)
    first = echoed.steps.get(node_id="json", phase="forward")
    assert first.response_body["body"] == {"key": "***", "nested": ["key is ***!"]}
    assert first.response_body["query"] == {"token": "***", "k": "***"}
    assert first.response_body["keyed"] == {"***": "value"}
    assert first.response_headers["x-echo-key"] == "***"
    assert first.response_headers["set-cookie"] == "key=***; Path=/"
    text = echoed.steps.get(node_id="text").response_body
    assert text == 'you sent {"key": "***", "nested": ["key is ***!"]} and ***'
    pay = echoed.steps.get(node_id="pay")
    assert pay.detail["callback"]["output"]["keyed"] == {"***": "value"}
    assert pay.detail["callback"]["output"]["body"]["key"] == "***"
    error = unreachable.steps.get().error
    assert error["failure"] == "egress"
    assert error["message"].startswith("egress refused: host '***.invalid' does not resolve"), error


def test_the_same_callback_again_is_recognised_although_its_stored_copy_is_masked(service, secrets_set):
    run_executions(service)
    sent = service.calls("POST", "/pay")[0]
    again = requests.post(
        sent.header("X-Trama-Callback-Url"), json={"status": "succeeded", "output": echo(sent)}, timeout=10
    )
    assert (again.status_code, again.json()["detail"]) == (200, "callback already applied")


def test_no_row_holds_the_secret(service, secrets_set):
    for execution in run_executions(service):
        rows = [*Execution.objects.filter(pk=execution.pk).values(), *Step.objects.filter(execution=execution).values()]
        assert leaked(json.dumps(rows, default=str, ensure_ascii=False)) == [], f"execution {execution.pk}"


def test_the_steps_api_never_shows_the_secret(service, secrets_set, api):
    for execution in run_executions(service):
        for url in (f"/api/v1/executions/{execution.pk}/", f"/api/v1/executions/{execution.pk}/steps/"):
            answer = api.get(url)
            assert answer.status_code == 200
            assert leaked(answer.content.decode()) == [], url


def test_the_logs_never_show_the_secret(service, secrets_set, caplog):
    run_executions(service)
    assert any(record.name == "trama.executions.state" for record in caplog.records)
    for record in caplog.records:
        assert leaked(record.getMessage()) == [], record.name
        assert leaked(json.dumps(record.__dict__, default=str, ensure_ascii=False)) == [], record.name


def test_the_spans_never_show_the_secret(service, secrets_set):
    run_executions(service)
    spans = secrets_set.get_finished_spans()
    assert any(span.status.description and "egress refused" in span.status.description for span in spans)
    for span in spans:
        assert leaked(span.to_json()) == [], span.name
