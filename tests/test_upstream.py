"""Definitions in the original runtime's format (SPEC 2.2), as github.com/thiagoribeiro/trama defines them.

The fixtures below are our own, written in the shapes of the definitions the original
ships (its README, scripts/validate_demo/*.json, scripts/full_demo/save_definition.py,
scripts/saga_demo/run_saga.py and run_square_chain.py, scripts/workflow_demo/run_async_demo.py
and run_switch_demo.py, the templates of ui/definition-editor/js/main.js). Each test names
the original's file whose behaviour it states.
"""

import copy
import json

import pytest

from definitions.models import Definition
from definitions.upstream import is_upstream
from definitions.validation import validate_definition
from executions.models import Execution
from executions.services import start_execution
from tests.support import Reply
from tests.support.engine import drive

pytestmark = pytest.mark.django_db

SVC = "http://svc.local"
JSON = {"Content-Type": "application/json"}


def call(path, body=None, verb="POST", **extra):
    return {"url": f"{SVC}{path}", "verb": verb, "headers": dict(JSON), **({"body": body} if body else {}), **extra}


def sync(node_id, path, next_node=None, compensate=True):
    node = {
        "kind": "task",
        "id": node_id,
        "action": {"mode": "sync", "request": call(path, {"orderId": "{{payload.orderId}}"})},
    }
    if compensate:
        node["compensation"] = call(f"{path}?phase=down", {"orderId": "{{payload.orderId}}"})
    if next_node:
        node["next"] = next_node
    return node


def card(next_node="notify"):
    body = {
        "orderId": "{{payload.orderId}}",
        "callbackUrl": "{{runtime.callback.url}}",
        "callbackToken": "{{runtime.callback.token}}",
    }
    return {
        "kind": "task",
        "id": "card-payment",
        "action": {
            "mode": "async",
            "request": call("/async-step/card-payment", body),
            "acceptedStatusCodes": [202],
            "callback": {"timeoutMillis": 60000},
        },
        "next": next_node,
    }


def choose(var="payload.paymentMethod", default="pix-payment"):
    cases = [
        {"name": method, "when": {"==": [{"var": var}, method]}, "target": f"{method}-payment"}
        for method in ("pix", "card")
    ]
    return {"kind": "switch", "id": "choose-payment", "cases": cases, "default": default}


def checkout(var="payload.paymentMethod"):
    """scripts/validate_demo/definition.json and scripts/full_demo/save_definition.py."""
    return {
        "name": "checkout-full-demo",
        "version": "v1",
        "failureHandling": {"type": "retry", "maxAttempts": 2, "delayMillis": 500},
        "entrypoint": "validate",
        "nodes": [
            sync("validate", "/step/validate", "choose-payment"),
            choose(var),
            sync("pix-payment", "/step/pix-payment", "notify"),
            card(),
            sync("notify", "/step/notify", compensate=False),
        ],
        "onSuccessCallback": call("/callback/success", {"orderId": "{{payload.orderId}}", "result": "succeeded"}),
        "onFailureCallback": call("/callback/failure", {"orderId": "{{payload.orderId}}", "result": "failed"}),
    }


def checkout_broken():
    """scripts/validate_demo/definition_broken.json: typos the original's validator reports."""
    source = checkout()
    source["entrypoint"] = "validaet"
    source["nodes"][0]["next"] = "choose-payement"
    del source["nodes"][3]["action"]["callback"]
    return source


def saga_demo(name="demo-saga2", version="v1"):
    """scripts/saga_demo/run_saga.py: v1 steps whose second step reads the first's answer by index."""

    def step(name, with_prev=False):
        frm = "&from={{step.0.up.body.step}}" if with_prev else ""
        headers = {**JSON, "X-Fail-Step": "{{payload.fail_step}}", "X-Fail-Mode": "once"}
        up_body = {"prevStep": "{{step.0.up.body.step}}"} if with_prev else {"step": name}
        return {
            "name": name,
            "up": {"url": f"{SVC}/step/{name}?phase=up{frm}", "verb": "POST", "headers": headers, "body": up_body},
            "down": {
                "url": f"{SVC}/step/{name}?phase=down{frm}",
                "verb": "POST",
                "headers": headers,
                "body": {"compensate": name},
            },
        }

    return {
        "name": name,
        "version": version,
        "failureHandling": {"type": "retry", "maxAttempts": 1, "delayMillis": 200},
        "steps": [step("reserve"), step("charge", with_prev=True)],
        "onSuccessCallback": call("/callback/success", {"status": "ok"}),
        "onFailureCallback": call("/callback/failure", {"status": "failed"}),
    }


def square_chain(count=3):
    """scripts/saga_demo/run_square_chain.py: a body that is one template string, {{sagaId}}."""
    steps = []
    for index in range(count):
        value = "{{payload.initial_value}}" if index == 0 else f"{{{{step.{index - 1}.up.body.result}}}}"
        steps.append(
            {
                "name": f"square-{index + 1}",
                "up": {"url": f"{SVC}/square", "verb": "POST", "headers": dict(JSON), "body": value},
                "down": call("/compensate", {"step": f"square-{index + 1}", "lastKnown": value}),
            }
        )
    final = f"{{{{step.{count - 1}.up.body.result}}}}"
    return {
        "name": "square-chain-demo",
        "version": "v1700000000",
        "failureHandling": {"type": "retry", "maxAttempts": 1, "delayMillis": 200},
        "steps": steps,
        "onSuccessCallback": call("/done_square", {"status": "done", "sagaId": "{{sagaId}}", "final": final}),
    }


def async_demo():
    """scripts/workflow_demo/run_async_demo.py: completion callbacks whose body is JSON text."""
    authorize = card(next_node="capture")
    authorize["id"] = "authorize"
    authorize["action"]["callback"]["timeoutMillis"] = 30000
    return {
        "name": "payment-async-v2",
        "version": "v1",
        "failureHandling": {"type": "retry", "maxAttempts": 2, "delayMillis": 200},
        "entrypoint": "authorize",
        "nodes": [authorize, sync("capture", "/step/capture", "notify"), sync("notify", "/step/notify")],
        "onSuccessCallback": call("/callback/success", '{"status":"ok","orderId":"{{payload.orderId}}"}'),
        "onFailureCallback": call("/callback/failure", '{"status":"failed","orderId":"{{payload.orderId}}"}'),
    }


def switch_demo():
    """scripts/workflow_demo/run_switch_demo.py."""
    return {
        "name": "checkout-v2",
        "version": "v1",
        "failureHandling": {"type": "retry", "maxAttempts": 2, "delayMillis": 100},
        "entrypoint": "choose-payment",
        "nodes": [
            choose(default="fallback-payment"),
            *[sync(f"{m}-payment", f"/step/{m}-payment", "notify") for m in ("pix", "card", "fallback")],
            sync("notify", "/step/notify"),
        ],
        "onSuccessCallback": call("/callback/success", '{"status":"ok","orderId":"{{payload.orderId}}"}'),
    }


def editor_template(name):
    """The three templates of ui/definition-editor/js/main.js (TEMPLATES): URLs left blank for the author."""
    blank = {"url": "", "verb": "POST"}

    def task(node_id, next_node=None, **action):
        node = {"kind": "task", "id": node_id, "action": {"mode": "sync", "request": dict(blank), **action}}
        return node | ({"next": next_node} if next_node else {})

    if name == "simple-chain":
        nodes = [task("step-1", "step-2"), task("step-2", "step-3"), task("step-3")]
        return {
            "name": name,
            "version": "v1",
            "failureHandling": {"type": "retry", "maxAttempts": 2, "delayMillis": 500},
            "entrypoint": "step-1",
            "nodes": nodes,
        }
    if name == "payment-split":
        callback = {"timeoutMillis": 60000, "successWhen": None, "failureWhen": None}
        nodes = [
            task("validate", "choose-method"),
            {**choose(), "id": "choose-method"},
            task("pix-payment", "notify"),
            {**task("card-payment", "notify", acceptedStatusCodes=[202], callback=callback)},
            task("notify"),
        ]
        nodes[3]["action"]["mode"] = "async"
        handling = {"type": "retry", "maxAttempts": 3, "delayMillis": 1000}
        return {
            "name": "payment-saga",
            "version": "v1",
            "failureHandling": handling,
            "entrypoint": "validate",
            "nodes": nodes,
        }
    rules = {"==": [{"var": "payload.status"}, "completed"]}
    callback = {"timeoutMillis": 120000, "successWhen": rules, "failureWhen": None}
    nodes = [task("trigger", "notify", mode="async", acceptedStatusCodes=[202], callback=callback), task("notify")]
    handling = {
        "type": "backoff",
        "maxAttempts": 3,
        "initialDelayMillis": 500,
        "maxDelayMillis": 10000,
        "multiplier": 2.0,
        "jitterRatio": 0.1,
    }
    return {"name": "async-saga", "version": "v1", "failureHandling": handling, "entrypoint": "trigger", "nodes": nodes}


def readme_example():
    """README.md's example: no failureHandling, which SagaDefinitionV2 requires (no default)."""
    source = async_demo()
    del source["failureHandling"], source["onSuccessCallback"], source["onFailureCallback"]
    return source


ACCEPTED = {
    "validate_demo/definition.json": checkout(var="input.paymentMethod"),
    "validate_demo/definition_logic_bug.json": checkout(var="input.payment_method"),
    "full_demo/save_definition.py": checkout(),
    "saga_demo/run_saga.py": saga_demo(),
    "saga_demo/run_square_chain.py": square_chain(),
    "workflow_demo/run_async_demo.py": async_demo(),
    "workflow_demo/run_switch_demo.py": switch_demo(),
}


@pytest.mark.parametrize("origin", list(ACCEPTED))
def test_every_definition_the_original_ships_is_stored_unchanged(api, origin):
    source = ACCEPTED[origin]
    response = api.post("/api/v1/definitions/", source, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["source"] == source
    assert api.post("/api/v1/definitions/validate/", source, format="json").status_code == 200


@pytest.mark.parametrize(
    ("origin", "source", "expected"),
    [
        (
            "validate_demo/definition_broken.json",
            checkout_broken(),
            {
                "entrypoint": "unknown node 'validaet'",
                "nodes[0].next": "unknown node 'choose-payement'",
                "nodes[3].action.callback": "callback is required when mode is async",
            },
        ),
        ("README.md", readme_example(), {"failureHandling": "failureHandling is required"}),
        (
            "definition-editor simple-chain",
            editor_template("simple-chain"),
            {f"nodes[{i}].action.request.url": "url must not be blank" for i in range(3)},
        ),
        (
            "definition-editor payment-split",
            editor_template("payment-split"),
            {f"nodes[{i}].action.request.url": "url must not be blank" for i in (0, 2, 3, 4)},
        ),
        (
            "definition-editor async-callback",
            editor_template("async-callback"),
            {
                "nodes[0].action.request.url": "url must not be blank",
                "nodes[1].action.request.url": "url must not be blank",
                "failureHandling.jitterRatio": "not supported yet",
                "nodes[0].action.callback.successWhen.==[0].var": "reads nothing in the original",
            },
        ),
    ],
)
def test_what_the_original_refuses_gets_path_precise_400s(api, origin, source, expected):
    response = api.post("/api/v1/definitions/", source, format="json")
    assert response.status_code == 400, origin
    found = {error["path"]: error["message"] for error in response.json()["errors"]}
    for path, message in expected.items():
        assert message in found.get(path, ""), (path, found)
    assert not Definition.objects.exists()


RETRY_ONCE = {
    "max_attempts": 2,
    "backoff_s": 0.2,
    "multiplier": 1.0,
    "max_backoff_s": 0.2,
    "retry_on": ["network", "timeout", "1xx", "2xx", "3xx", "4xx", "5xx", "callback_timeout"],
}


def request(method, url, body=None, status=(200, 201, 202), headers=JSON, **extra):
    """A converted request: a body is the original's text (its JSON text for an object), sent raw."""
    native = {
        "method": method,
        "url": url,
        "headers": dict(headers),
        "query": {},
        "timeout_s": 30.0,  # application.yaml, requestTimeoutMillis
        "success_status": list(status),
    }
    if body is not None:
        text = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))
        native |= {"body": text, "body_format": "text"}
    return native | extra


def test_a_v1_saga_converts_to_this_spec():
    """run_saga.py's shape: maxAttempts 1 is one retry (RetryPolicy.kt); templates are kept as written."""
    source = saga_demo()
    for step in source["steps"]:
        for phase in ("up", "down"):
            step[phase]["headers"] = {"X-Step": "{{payload.fail_step}}"}
    spec = validate_definition(source).spec
    headers = {"X-Step": "{{payload.fail_step}}"}
    assert spec == {
        "name": "demo-saga2",
        "kind": "saga",
        "start": "reserve",
        "nodes": {
            "reserve": {
                "type": "task",
                "next": "charge",
                "request": request("POST", f"{SVC}/step/reserve?phase=up", {"step": "reserve"}, headers=headers),
                "retry": RETRY_ONCE,
                "compensation": request(
                    "POST",
                    f"{SVC}/step/reserve?phase=down",
                    {"compensate": "reserve"},
                    headers=headers,
                    retry=RETRY_ONCE,
                ),
                "on_failure": "compensate",
            },
            "charge": {
                "type": "task",
                "next": None,
                "request": request(
                    "POST",
                    f"{SVC}/step/charge?phase=up&from={{{{step.0.up.body.step}}}}",
                    {"prevStep": "{{step.0.up.body.step}}"},
                    headers=headers,
                ),
                "retry": RETRY_ONCE,
                "compensation": request(
                    "POST",
                    f"{SVC}/step/charge?phase=down&from={{{{step.0.up.body.step}}}}",
                    {"compensate": "charge"},
                    headers=headers,
                    retry=RETRY_ONCE,
                ),
                "on_failure": "compensate",
            },
        },
        "notify": {
            "succeeded": request(
                "POST", f"{SVC}/callback/success", {"status": "ok"}, retry={**RETRY_ONCE, "max_attempts": 1}
            ),
            "failed": request(
                "POST", f"{SVC}/callback/failure", {"status": "failed"}, retry={**RETRY_ONCE, "max_attempts": 1}
            ),
        },
        "dialect": {"name": "trama-v1", "version": "v1"},
    }


def test_a_v2_graph_converts_to_this_spec():
    """SagaDefinition.kt's v2 model with every node kind, the backoff policy and the per-verb defaults."""
    source = {
        "name": "v2-all",
        "version": "7",
        "failureHandling": {"type": "backoff", "maxAttempts": 4, "initialDelayMillis": 100, "maxDelayMillis": 2000},
        "entrypoint": "route",
        "nodes": [
            {
                "kind": "switch",
                "id": "route",
                "cases": [{"when": '{"==": [{"var": "step.pay.body.ok"}, true]}', "target": "wait"}],
                "default": "pay",
            },
            {
                "kind": "task",
                "id": "pay",
                "action": {
                    "mode": "async",
                    "request": {"url": f"{SVC}/pay", "verb": "PUT", "body": {"cb": "{{{runtime.callback.url}}}"}},
                    "callback": {
                        "timeoutMillis": 90000,
                        "successWhen": {"==": [{"var": "callback.body.status"}, "ok"]},
                    },
                },
                "compensation": {"url": f"{SVC}/pay/{{{{nodes.pay.response.body.id}}}}", "verb": "DELETE"},
                "next": "wait",
            },
            {"kind": "sleep", "id": "wait", "durationMillis": 1500, "next": "read"},
            {
                "kind": "task",
                "id": "read",
                "action": {
                    "mode": "sync",
                    "request": {"url": f"{SVC}/read", "verb": "GET"},
                    "successStatusCodes": [200, 404],
                },
            },
        ],
    }
    retry = {
        "max_attempts": 5,
        "backoff_s": 0.1,
        "multiplier": 2.0,
        "max_backoff_s": 2.0,
        "retry_on": RETRY_ONCE["retry_on"],
    }
    spec = validate_definition(source).spec
    assert spec["nodes"]["route"]["cases"] == [{"when": {"==": [{"var": "step.pay.body.ok"}, True]}, "next": "wait"}]
    assert spec["nodes"]["route"]["default"] == "pay"
    pay = spec["nodes"]["pay"]
    assert pay["type"] == "async_task" and pay["timeout_s"] == 90.0 and pay["next"] == "wait"
    assert pay["request"] == request(
        "PUT", f"{SVC}/pay", {"cb": "{{{runtime.callback.url}}}"}, status=[202], headers={}
    )
    assert pay["callback"] == {"success_when": {"==": [{"var": "callback.body.status"}, "ok"]}, "failure_when": None}
    assert pay["retry"] == retry
    compensation = request(
        "DELETE", f"{SVC}/pay/{{{{nodes.pay.response.body.id}}}}", status=[200, 202, 204], headers={}
    )
    assert pay["compensation"] == compensation | {"retry": retry}
    assert spec["nodes"]["wait"] == {"type": "sleep", "next": "read", "duration_s": 1.5, "until": None}
    assert spec["nodes"]["read"]["request"] == request("GET", f"{SVC}/read", status=[200, 404], headers={})
    assert spec["start"] == "route" and "notify" not in spec
    assert spec["dialect"] == {"name": "trama-v2", "version": "7"}


def errors(source):
    result = validate_definition(source)
    assert result.spec is None
    return {error["path"]: error["message"] for error in result.errors}


def test_unknown_fields_are_refused_at_their_path():
    source = checkout()
    source["description"] = "x"
    source["failureHandling"]["delay"] = 1
    source["nodes"][0]["retry"] = {}
    source["nodes"][0]["action"]["request"]["method"] = "POST"
    source["nodes"][1]["cases"][0]["condition"] = "x"
    source["nodes"][3]["action"]["callback"]["heartbeatMillis"] = 5
    source["onSuccessCallback"]["timeoutMillis"] = 5
    found = errors(source)
    assert found == {
        "description": "unknown field 'description'",
        "failureHandling.delay": "unknown field 'delay'",
        "nodes[0].retry": "unknown field 'retry'",
        "nodes[0].action.request.method": "unknown field 'method'",
        "nodes[1].cases[0].condition": "unknown field 'condition'",
        "nodes[3].action.callback.heartbeatMillis": "unknown field 'heartbeatMillis'",
        "onSuccessCallback.timeoutMillis": "unknown field 'timeoutMillis'",
    }
    v1 = saga_demo()
    v1["steps"][0]["retry"] = {}
    assert errors(v1) == {"steps[0].retry": "unknown field 'retry'"}


def test_the_originals_required_fields_and_types():
    """SagaDefinition.kt: version, failureHandling, up, down, url and verb have no defaults; verb is upper case."""
    source = saga_demo()
    del source["version"]
    del source["steps"][0]["down"]
    source["steps"][1]["up"]["verb"] = "post"
    del source["steps"][1]["down"]["url"]
    source["failureHandling"]["type"] = "linear"
    found = errors(source)
    assert found["version"] == "version is required"
    assert found["steps[0].down"] == "down is required"
    assert found["steps[1].up.verb"].startswith("verb must be one of GET, HEAD, OPTIONS, POST")
    assert found["steps[1].down.url"] == "url is required"
    assert found["failureHandling.type"] == "type must be 'retry' or 'backoff', got 'linear'"
    assert errors({**saga_demo(), "failureHandling": "compensate"}) == {
        "failureHandling": "failureHandling must be an object, got string"
    }


def test_values_are_checked_by_the_normal_validation_and_reported_at_the_original_field():
    source = checkout()
    source["failureHandling"]["delayMillis"] = 5_000_000
    source["nodes"][3]["action"]["callback"]["timeoutMillis"] = 0
    source["nodes"][1]["cases"][1]["target"] = "nowhere"
    source["nodes"][4]["id"] = "no.dots"
    source["nodes"][2]["next"] = "no.dots"
    source["nodes"][3]["next"] = "no.dots"
    found = errors(source)
    assert "backoff_s must be at most 3600" in found["failureHandling.delayMillis"]
    assert "greater than 0" in found["nodes[3].action.callback.timeoutMillis"]
    assert found["nodes[1].cases[1].target"].startswith("unknown node 'nowhere'")
    assert "no.dots" in found["nodes[4]"] or "no.dots" in found.get("nodes[4].id", "")


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [
        (lambda s: s["steps"][0]["up"].update(url=SVC + "/{{#payload.a}}x{{/payload.a}}"), "steps[0].up.url", "tag"),
        (lambda s: s["steps"][0]["up"].update(url=SVC + "/{{secrets.KEY}}"), "steps[0].up.url", "renders as empty"),
        (lambda s: s["steps"][0]["up"].update(body={"p": "{{input.x}}"}), "steps[0].up.body", "renders as empty"),
        (
            lambda s: s["steps"][0]["up"].update(url=SVC + "/{{nodes.reserve.response.status}}"),
            "steps[0].up.url",
            "empty",
        ),
    ],
)
def test_what_has_no_native_counterpart_yet_is_refused_by_name(change, path, message):
    source = saga_demo()
    change(source)
    found = errors(source)
    assert message in found.get(path, ""), found
    assert "not supported yet" in found[path] or "renders as empty" in found[path]


@pytest.mark.parametrize(
    "text",
    ["plain {{payload.x}} text", '{"p": "{{prev.body.x}}"}', "{{sagaVersion}}/{{stepName}}/{{phase}}",
     "{{steps.0.name}}", "{{step.0.down.body.x}}", "{{{runtime.callback.token}}} {{& sagaName}} {{! a comment}}"],
)  # fmt: skip
def test_every_root_of_the_originals_template_context_is_accepted(text):
    """TemplateContextBuilder.build (TemplateRenderer.kt): the body is kept as the text the original renders."""
    source = saga_demo()
    source["steps"][0]["up"]["body"] = text
    request = validate_definition(source).spec["nodes"]["reserve"]["request"]
    assert request["body"] == text and request["body_format"] == "text"


def test_success_codes_default_per_verb_as_in_the_original():
    """SagaDefinition.kt defaultSuccessStatusCodes; TaskNodeHandler.kt accepts an async call with 202."""
    expected = {"GET": [200], "HEAD": [200], "OPTIONS": [200], "POST": [200, 201, 202], "PUT": [200, 202, 204]}
    for verb, codes in expected.items():
        source = saga_demo()
        source["steps"][0]["up"]["verb"] = verb
        assert validate_definition(source).spec["nodes"]["reserve"]["request"]["success_status"] == codes
    source = checkout()
    del source["nodes"][3]["action"]["acceptedStatusCodes"]
    assert validate_definition(source).spec["nodes"]["card-payment"]["request"]["success_status"] == [202]


def test_bodies_and_template_strings():
    """TemplateStringSerializer: a string, {"value": string} or other JSON; run_square_chain.py: one-reference body."""
    spec = validate_definition(square_chain(2)).spec
    assert spec["nodes"]["square-1"]["request"]["body"] == "{{payload.initial_value}}"
    assert spec["nodes"]["square-2"]["request"]["body"] == "{{step.0.up.body.result}}"
    assert json.loads(spec["notify"]["succeeded"]["body"])["sagaId"] == "{{sagaId}}"
    spec = validate_definition(async_demo()).spec
    assert spec["notify"]["succeeded"]["body"] == '{"status":"ok","orderId":"{{payload.orderId}}"}'
    assert spec["notify"]["succeeded"]["body_format"] == "text"
    source = saga_demo()
    source["steps"][0]["up"]["url"] = {"value": SVC + "/wrapped"}
    source["steps"][0]["up"]["body"] = {"value": '{"n": "{{payload.n}}"}', "ignored": 1}  # only "value" is read
    spec = validate_definition(source).spec
    assert spec["nodes"]["reserve"]["request"]["url"] == SVC + "/wrapped"
    assert spec["nodes"]["reserve"]["request"]["body"] == '{"n": "{{payload.n}}"}'


def test_detection():
    assert is_upstream(saga_demo()) and is_upstream(checkout()) and is_upstream({"name": "x", "nodes": []})
    assert not is_upstream({"name": "x", "kind": "saga", "steps": []})
    assert not is_upstream({"name": "x", "steps": [{"id": "a"}]})  # native without kind: the usual kind error
    assert errors({"name": "x", "steps": [{"id": "a"}]}) == {"kind": "kind is required"}


def test_nothing_in_the_originals_format_answers_500(api):
    """The v1 failureHandling object answered 500 (TypeError: unhashable type: 'dict') before."""
    broken = copy.deepcopy(saga_demo())
    broken["failureHandling"] = {"type": {"a": 1}, "maxAttempts": [], "delayMillis": {}}
    broken["steps"][0]["up"]["verb"] = {"x": 1}
    broken["steps"][1] = {"name": {"a": 1}, "up": [], "down": "x"}
    for body in (broken, {"nodes": [{"kind": {}, "id": {}}, {"kind": "switch", "id": "s", "cases": {"a": 1}}]}):
        for url in ("/api/v1/definitions/validate/", "/api/v1/definitions/"):
            assert api.post(url, body, format="json").status_code == 400


# --- It runs -------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_v1_saga_runs_retries_and_compensates_as_the_original(api, service, settings):
    """RetryPolicy.kt: maxAttempts 1 is one retry; WorkflowExecutor.kt compensates completed steps in reverse."""
    settings.TRAMA_EGRESS_ALLOW = ["127.0.0.1"]
    source = saga_demo()
    source["failureHandling"]["delayMillis"] = 10
    for step in source["steps"]:
        for phase in ("up", "down"):
            step[phase]["url"] = step[phase]["url"].replace(SVC, service.url)
    for key in ("onSuccessCallback", "onFailureCallback"):
        source[key]["url"] = source[key]["url"].replace(SVC, service.url)
    response = api.post("/api/v1/definitions/", source, format="json")
    assert response.status_code == 201, response.json()
    definition = Definition.objects.get(name="demo-saga2", version=response.json()["version"])
    service.script("POST", "/step/reserve", Reply(201, {"step": "reserve"}))
    service.default("POST", "/step/charge", Reply(500, {"error": "declined"}))
    execution, _ = start_execution(definition, {"fail_step": "charge"})
    execution = drive(execution)
    rows = list(execution.steps.order_by("seq").values_list("node_id", "phase", "attempt", "status"))
    assert rows[:3] == [
        ("reserve", "forward", 1, "succeeded"),
        ("charge", "forward", 1, "failed"),
        ("charge", "forward", 2, "failed"),
    ]
    assert ("reserve", "compensation", 1, "succeeded") in rows
    charge = next(r for r in service.requests if r.path.startswith("/step/charge"))
    assert charge.body == {"prevStep": "reserve"}
    assert isinstance(execution, Execution)


# --- The outcomes the original's own tests state ---------------------------------------------------


def kotlin_v1(**changes):
    """The definition of SagaDefinitionValidatorTest `valid definition passes` (app/test/.../saga/)."""
    up = {
        "url": "http://service/reserve/{{sagaId}}",
        "verb": "POST",
        "headers": {"X-Req": "{{sagaId}}"},
        "body": '{"id":"{{sagaId}}"}',
    }
    step = {"name": "reserve", "up": up, "down": {"url": "http://service/reserve/{{sagaId}}", "verb": "DELETE"}}
    source = {
        "name": "order-flow",
        "version": "1",
        "failureHandling": {"type": "retry", "maxAttempts": 3, "delayMillis": 1000},
        "steps": [step],
    }
    return source | changes


def test_saga_definition_validator_test_valid_definition_passes():
    """SagaDefinitionValidatorTest `valid definition passes`."""
    spec = validate_definition(kotlin_v1()).spec
    request = spec["nodes"]["reserve"]["request"]
    assert request["url"] == "http://service/reserve/{{sagaId}}"
    assert request["headers"] == {"X-Req": "{{sagaId}}"} and request["body"] == '{"id":"{{sagaId}}"}'
    assert spec["nodes"]["reserve"]["compensation"]["success_status"] == [200, 202, 204]


def test_saga_definition_validator_test_invalid_definition_returns_errors():
    """SagaDefinitionValidatorTest `invalid definition returns errors`: each error it expects, at its path."""
    up = {"url": "", "verb": "POST", "headers": {"": ""}, "body": "", "successStatusCodes": []}
    down = {"url": "", "verb": "DELETE", "successStatusCodes": [42]}
    source = kotlin_v1(
        name=" ",
        version="",
        failureHandling={"type": "retry", "maxAttempts": 0, "delayMillis": 0},
        steps=[{"name": "", "up": up, "down": down}],
        onSuccessCallback={"url": "", "verb": "POST", "successStatusCodes": []},
    )
    found = errors(source)
    assert "must not be blank" in found["name"]
    assert found["version"] == "version must not be blank"
    assert found["steps[0].name"] == "name must not be blank"
    assert found["steps[0].up.url"] == "url must not be blank"
    assert "non-empty list" in found["steps[0].up.successStatusCodes"]
    assert found["steps[0].down.successStatusCodes[0]"] == "successStatusCodes contains invalid code: 42"
    assert found["onSuccessCallback.url"] == "url must not be blank"
    assert found["steps[0].up.body"] == "body must not be blank when provided"
    assert "failureHandling" not in found  # no retries and no delay are allowed


def kotlin_v2(nodes):
    """The definitions of WorkflowDefinitionValidatorTest (app/test/.../saga/workflow/)."""
    return {
        "name": "cyclic-flow",
        "version": "1",
        "failureHandling": {"type": "retry", "maxAttempts": 3, "delayMillis": 1000},
        "entrypoint": "step-a",
        "nodes": nodes,
    }


def kotlin_task(node_id, next_node=None, compensation=False):
    node = {
        "kind": "task",
        "id": node_id,
        "action": {"mode": "sync", "request": {"url": SVC + "/action", "verb": "POST"}},
    }
    if compensation:
        node["compensation"] = {"url": SVC + "/compensate", "verb": "DELETE"}
    return node | ({"next": next_node} if next_node else {})


def test_workflow_definition_validator_test_cycles_and_compensation():
    """WorkflowDefinitionValidatorTest: compensation is not allowed in cyclic workflows (also through a switch
    default); a linear workflow with compensation is valid."""
    cyclic = errors(kotlin_v2([kotlin_task("step-a", "step-b", compensation=True), kotlin_task("step-b", "step-a")]))
    assert cyclic["nodes[0].compensation"] == "compensation is not allowed in cyclic workflows"
    router = {"kind": "switch", "id": "router", "cases": [{"name": "done", "when": {"==": [1, 1]}, "target": "step-b"}]}
    via_switch = [
        kotlin_task("step-a", "router", compensation=True),
        router | {"default": "step-a"},
        kotlin_task("step-b"),
    ]
    assert errors(kotlin_v2(via_switch)) == {"nodes[0].compensation": "compensation is not allowed in cyclic workflows"}
    linear = [kotlin_task("step-a", "step-b", compensation=True), kotlin_task("step-b", compensation=True)]
    assert validate_definition(kotlin_v2(linear)).spec is not None


def test_a_cycle_with_no_exit_is_refused_unlike_the_original():
    """WorkflowDefinitionValidatorTest `cyclic workflow without compensation is valid`: an a -> b -> a loop never
    ends; SPEC 2.4 refuses it (docs/upstream.md lists the difference)."""
    found = errors(kotlin_v2([kotlin_task("step-a", "step-b"), kotlin_task("step-b", "step-a")]))
    assert set(found) <= {"nodes[0]", "nodes[1]"} and found
