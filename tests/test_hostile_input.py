"""Hostile input, from clients and from the services Trama calls: a clear 4xx or a safely stored step, never a 500.

Client side: oversized, deeply nested, non-UTF-8 and wrongly typed bodies.
Service side: huge, binary, NUL-laden and otherwise unstorable responses (the
execution goes on), templates that reference missing paths and rules that
throw (the node fails, the error is recorded).
"""

from __future__ import annotations

import json

import pytest
import requests

from definitions.models import Definition
from executions.models import Execution, Step
from executions.services import start_execution
from tests.support import Reply
from tests.support.definitions import DefinitionFactory, store
from tests.support.engine import drive, history
from tests.support.specs import req, switch, task

WRITE_ENDPOINTS = [
    "/api/v1/definitions/",
    "/api/v1/definitions/validate/",
    "/api/v1/executions/",
    "/api/v1/expressions/evaluate/",
]
VALID_DEFINITION = {
    "name": "hostile",
    "kind": "graph",
    "start": "a",
    "nodes": {"a": {"type": "task", "request": {"method": "POST", "url": "https://example.com/a"}}},
}


def nested(depth: int) -> str:
    return '{"a": ' * depth + "1" + "}" * depth


# --- Client bodies --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [*WRITE_ENDPOINTS, "/api/v1/callbacks/some-token/"])
def test_a_body_over_the_limit_is_a_413_naming_the_limit(api, settings, path):
    settings.TRAMA_MAX_REQUEST_BYTES = 4096
    response = api.post(path, json.dumps({"input": {"blob": "y" * 10_000}}), content_type="application/json")
    assert response.status_code == 413
    body = response.json()
    assert "4096" in body["detail"] and "TRAMA_MAX_REQUEST_BYTES" in body["detail"]


@pytest.mark.django_db(transaction=True)
def test_a_body_over_the_limit_is_refused_over_real_http(live_server, settings):
    from trama_project.models import ApiToken

    settings.TRAMA_MAX_REQUEST_BYTES = 4096
    _, raw = ApiToken.mint("hostile")
    response = requests.post(
        f"{live_server.url}/api/v1/executions/",
        data=b'{"definition": "x", "input": {"blob": "' + b"y" * 200_000 + b'"}}',
        headers={"Authorization": f"Bearer {raw}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 413
    assert "TRAMA_MAX_REQUEST_BYTES" in response.json()["detail"]
    assert Execution.objects.count() == 0


@pytest.mark.parametrize("path", [*WRITE_ENDPOINTS, "/api/v1/callbacks/some-token/"])
@pytest.mark.parametrize("depth", [100_000])
def test_nesting_too_deep_for_the_parser_is_a_400(api, path, depth):
    response = api.post(path, nested(depth), content_type="application/json")
    assert response.status_code == 400
    assert "nested too deeply" in response.json()["detail"]


@pytest.mark.parametrize(
    ("field", "depth"),
    [
        ("input", 300),
        ("input", 900),
        ("spec", 300),
        ("spec", 900),
    ],
)
def test_deep_but_parsable_nesting_in_a_start_is_never_a_500(api, field, depth):
    DefinitionFactory(name="hostile", source=VALID_DEFINITION, spec=VALID_DEFINITION)
    body = '{"definition": "hostile", "input": ' + nested(depth) + "}"
    if field == "spec":
        body = '{"spec": ' + nested(depth) + ', "input": {}}'
    response = api.post("/api/v1/executions/", body, content_type="application/json")
    assert response.status_code in (202, 400), response.content[:300]


@pytest.mark.parametrize("depth", [300, 900])
@pytest.mark.parametrize("path", ["/api/v1/definitions/", "/api/v1/definitions/validate/"])
def test_deep_but_parsable_nesting_in_a_definition_is_a_400(api, path, depth):
    # An unknown field of node a holding the nesting.
    request = '"url": "https://example.com/a"}'
    body = json.dumps(VALID_DEFINITION).replace(request, request + ', "deep": ' + nested(depth))
    response = api.post(path, body, content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    assert not Definition.objects.exists()


@pytest.mark.parametrize("path", [*WRITE_ENDPOINTS, "/api/v1/callbacks/some-token/"])
@pytest.mark.parametrize("raw", [b'{"name": "\xff\xfe"}', b"\xc3\x28", b'{"input": "\xed\xa0\x80"}'])
def test_a_body_that_is_not_utf8_is_a_400(api, path, raw):
    response = api.post(path, raw, content_type="application/json")
    assert response.status_code in (400, 403)  # callbacks: the bad token may be seen first
    assert response.json()["detail"]
    assert response.status_code == 400 or "callbacks" in path


@pytest.mark.parametrize("path", [*WRITE_ENDPOINTS])
def test_a_body_that_is_not_json_is_a_400(api, path):
    for raw in [b"", b"{", b"nul\x00l", b'{"a": NaN}', b"[1, 2,]"]:
        response = api.post(path, raw, content_type="application/json")
        assert response.status_code == 400, (raw, response.content[:200])


START_WRONG_TYPES = [
    ("definition", 5),
    ("definition", ["hostile"]),
    ("definition", {"name": "hostile"}),
    ("version", "one"),
    ("version", 0),
    ("version", 1.5),
    ("version", [1]),
    ("input", "text"),
    ("input", [1, 2]),
    ("input", 7),
    ("spec", "not a definition"),
    ("spec", [1]),
]


@pytest.mark.parametrize(("field", "value"), START_WRONG_TYPES)
def test_a_start_with_a_wrongly_typed_field_is_a_400_naming_it(api, field, value):
    DefinitionFactory(name="hostile", source=VALID_DEFINITION, spec=VALID_DEFINITION)
    body = {"definition": "hostile", "input": {}} | {field: value}
    if field == "spec":
        body = {"spec": value, "input": {}}
    response = api.post("/api/v1/executions/", body, format="json")
    assert response.status_code == 400, response.content
    paths = [e["path"] for e in response.json()["errors"]]
    assert any(p == field or p.startswith(f"{field}.") or p.startswith(f"{field}[") for p in paths), paths
    assert Execution.objects.count() == 0


DEFINITION_WRONG_TYPES = [
    ("name", 5),
    ("name", ["x"]),
    ("name", None),
    ("kind", 1),
    ("kind", "spaceship"),
    ("start", 3),
    ("start", {"a": 1}),
    ("nodes", []),
    ("nodes", "a"),
    ("nodes", {"a": "task"}),
    ("description", {"x": 1}),
    ("defaults", [1]),
    ("notify", "always"),
]


@pytest.mark.parametrize(("field", "value"), DEFINITION_WRONG_TYPES)
@pytest.mark.parametrize("path", ["/api/v1/definitions/", "/api/v1/definitions/validate/"])
def test_a_definition_with_a_wrongly_typed_field_is_a_400_naming_it(api, path, field, value):
    response = api.post(path, VALID_DEFINITION | {field: value}, format="json")
    assert response.status_code == 400, response.content
    paths = [e["path"] for e in response.json()["errors"]]
    assert any(p == field or p.startswith(f"{field}.") or p.startswith(f"{field}[") for p in paths), paths
    assert not Definition.objects.exists()


@pytest.mark.parametrize(("field", "value"), [("steps", "a"), ("steps", [1]), ("steps", {"a": {}})])
def test_a_saga_with_wrongly_typed_steps_is_a_400_naming_them(api, field, value):
    saga = {"name": "s", "kind": "saga", field: value}
    response = api.post("/api/v1/definitions/", saga, format="json")
    assert response.status_code == 400
    assert any(e["path"].startswith("steps") for e in response.json()["errors"])


# --- Service responses ----------------------------------------------------------------------------


@pytest.fixture
def loopback(settings):
    settings.TRAMA_EGRESS_ALLOW = ["127.0.0.1"]


def two_steps(url: str):
    """``a`` answers whatever the test scripts; ``b`` sends what it stored on, so it must be usable."""
    return store(
        {
            "a": task(req("POST", url + "/a"), next="b"),
            "b": task(req("POST", url + "/b", body={"from_a": "{{nodes.a.response.body}}"})),
        },
        "a",
    )


def run_with_reply(service, reply: Reply) -> tuple[Execution, Step]:
    service.default("POST", "/a", reply)
    execution = drive(start_execution(two_steps(service.url), {})[0])
    assert execution.status == "SUCCEEDED", execution.error
    assert history(execution) == [("a", "forward", 1, "succeeded"), ("b", "forward", 1, "succeeded")]
    step = execution.steps.get(node_id="a")
    json.dumps(step.response_body)  # what was stored reads back as JSON
    return execution, step


@pytest.mark.django_db(transaction=True)
def test_a_huge_response_is_capped_and_the_execution_goes_on(service, loopback, settings):
    settings.TRAMA_RESPONSE_BODY_CAP = 1024
    _, step = run_with_reply(service, Reply(200, "Z" * 5_000_000))
    assert step.response_body == {"truncated": True, "text": "Z" * 1024}
    assert service.calls("POST", "/b")[0].body == {"from_a": {"truncated": True, "text": "Z" * 1024}}


@pytest.mark.django_db(transaction=True)
def test_a_huge_json_response_is_capped_as_text(service, loopback, settings):
    settings.TRAMA_RESPONSE_BODY_CAP = 100
    _, step = run_with_reply(service, Reply(200, {"items": list(range(100_000))}))
    assert step.response_body["truncated"] is True and len(step.response_body["text"]) == 100


@pytest.mark.django_db(transaction=True)
def test_a_binary_response_is_stored_as_text_with_replacement_characters(service, loopback):
    binary = bytes(range(256)) * 4
    _, step = run_with_reply(service, Reply(200, binary))
    assert isinstance(step.response_body, str)
    assert "\x00" not in step.response_body and "\ufffd" in step.response_body
    assert step.response_headers["content-type"] == "application/octet-stream"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        (b"before\x00after", "before\ufffdafter"),
        (b'{"k": "a\\u0000b"}', {"k": "a\ufffdb"}),
        (b'{"a\\u0000": 1}', {"a\ufffd": 1}),
        (b'{"k": ["\\u0000", {"deep": "\\u0000"}]}', {"k": ["\ufffd", {"deep": "\ufffd"}]}),
        (b'{"k": "\\ud800"}', {"k": "\ufffd"}),
        (b'{"k": NaN}', '{"k": NaN}'),
        (b'{"k": Infinity}', '{"k": Infinity}'),
        (b'{"k": 1e999}', '{"k": 1e999}'),
        (b'{"k": 123456789012345678901234567890}', {"k": 123456789012345678901234567890}),
    ],
)
def test_a_response_postgres_cannot_store_as_is_is_stored_safely(service, loopback, raw, stored):
    _, step = run_with_reply(service, Reply(200, raw, headers={"Content-Type": "application/json"}))
    assert step.response_body == stored


@pytest.mark.django_db(transaction=True)
def test_nul_bytes_and_surrogates_in_response_headers_are_stored_safely(service, loopback):
    # http.server writes header values as latin-1; a NUL byte in one is legal on the wire.
    _, step = run_with_reply(service, Reply(200, {"ok": True}, headers={"X-Odd": "a\x00b", "X-Long": "v" * 10_000}))
    assert step.response_headers["x-odd"] == "a\ufffdb"
    assert len(step.response_headers["x-long"]) == 4096


@pytest.mark.django_db(transaction=True)
def test_a_response_nested_deeper_than_allowed_is_kept_as_text(service, loopback):
    deep = nested(5000)
    _, step = run_with_reply(service, Reply(200, deep.encode(), headers={"Content-Type": "application/json"}))
    assert step.response_body == deep
    _, step = run_with_reply(service, Reply(200, nested(150).encode(), headers={"Content-Type": "application/json"}))
    assert isinstance(step.response_body, dict)  # reasonable nesting stays JSON


@pytest.mark.django_db(transaction=True)
def test_a_response_with_many_headers_keeps_the_first_fifty(service, loopback):
    headers = {f"X-H{i:03d}": str(i) for i in range(90)}  # http.client itself refuses more than 100
    _, step = run_with_reply(service, Reply(200, {"ok": True}, headers=headers))
    # The first 50 headers received are kept; the test service sends Server and Date before them, and the
    # history leaves those transport headers out, so the first 48 X-H headers remain, in order.
    assert list(step.response_headers) == [f"x-h{i:03d}" for i in range(48)]


# --- Templates and rules --------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "reference",
    ["payload.customer.address.zip", "nodes.a.response.body.items.7", "nodes.a.response.headers.X-Missing"],
)
def test_a_template_referencing_a_missing_path_fails_the_step_naming_the_path(service, loopback, reference):
    service.default("POST", "/a", Reply(200, {"items": [1, 2]}))
    definition = store(
        {
            "a": task(req("POST", service.url + "/a"), next="b"),
            "b": task(req("POST", service.url + "/b", body={"v": "x-{{" + reference + "}}"}), on_failure="fail"),
        },
        "a",
    )
    execution = drive(start_execution(definition, {"customer": {"name": "n"}})[0])
    assert execution.status == "FAILED"
    step = execution.steps.get(node_id="b")
    assert step.error["failure"] == "template"
    assert reference in step.error["message"]
    assert reference in execution.error["message"]
    assert service.calls("POST", "/b") == []  # nothing was sent


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("rule", "named"),
    [
        ({"/": [1, 0]}, "ZeroDivisionError"),
        ({"+": ["abc", {"var": "payload.count"}]}, "ValueError"),
        ({"substr": [{"var": "payload.count"}, "a"]}, "Error"),
    ],
)
def test_a_rule_that_throws_fails_the_switch_with_the_error_recorded(service, loopback, rule, named):
    definition = store(
        {
            "route": switch([(rule, "yes")], default="no"),
            "yes": task(req("POST", service.url + "/yes")),
            "no": task(req("POST", service.url + "/no")),
        },
        "route",
    )
    execution = drive(start_execution(definition, {"count": 3})[0])
    assert execution.status in ("FAILED", "COMPENSATED")
    step = execution.steps.get(node_id="route")
    assert step.status == "failed"
    assert named in step.error["message"]
    assert execution.error["node"] == "route" and execution.error["failure"] == "rule"
    assert named in execution.error["message"]
    assert service.requests == []  # neither branch ran: not a silent false
