"""Definitions in the original runtime's format run with its semantics (issue 16 items 2 and 3).

The original is github.com/thiagoribeiro/trama; each test names the Kotlin test (under its
``app/test/kotlin/``) whose outcome it reproduces, or the source file whose behaviour it states.
Definitions are our own, in the original's format; they run through the real worker code
(tests.support.engine.drive) against a real HTTP service on 127.0.0.1.
"""

from __future__ import annotations

import pytest

from definitions.services import store_definition
from executions.callbacks.services import receive_callback
from executions.machine import original
from executions.models import Execution
from executions.services import TransitionRefused, retry_execution, start_execution
from tests.support import Reply
from tests.support.engine import drive, history

pytestmark = pytest.mark.django_db(transaction=True)

JSON = {"Content-Type": "application/json"}


@pytest.fixture(autouse=True)
def _loopback_allowed(settings):
    settings.TRAMA_EGRESS_ALLOW = ["127.0.0.1"]


def call(url: str, body=None, verb: str = "POST", headers=JSON) -> dict:
    return {"url": url, "verb": verb, "headers": dict(headers)} | ({"body": body} if body is not None else {})


def task(node_id: str, url: str, body=None, next_node=None, compensation=None, mode="sync", **action) -> dict:
    node = {"kind": "task", "id": node_id, "action": {"mode": mode, "request": call(url, body), **action}}
    if compensation is not None:
        node["compensation"] = compensation
    return node | ({"next": next_node} if next_node else {})


def switch(node_id: str, cases: list[tuple[str, dict, str]], default: str) -> dict:
    return {
        "kind": "switch",
        "id": node_id,
        "cases": [{"name": name, "when": rule, "target": target} for name, rule, target in cases],
        "default": default,
    }


def graph(entrypoint: str, *nodes: dict, max_attempts: int = 0, name: str = "wf") -> dict:
    handling = {"type": "retry", "maxAttempts": max_attempts, "delayMillis": 10}
    return {"name": name, "version": "v7", "failureHandling": handling, "entrypoint": entrypoint, "nodes": list(nodes)}


def saga(*steps: tuple[str, str], max_attempts: int = 0, name: str = "saga") -> dict:
    """A v1 saga: each ``(name, url)`` step POSTs to ``url`` and is undone by DELETE ``url``."""
    return {
        "name": name,
        "version": "v1",
        "failureHandling": {"type": "retry", "maxAttempts": max_attempts, "delayMillis": 10},
        "steps": [{"name": n, "up": call(u, {"step": n}), "down": call(u, verb="DELETE")} for n, u in steps],
    }


def run(source: dict, payload=None, until=None) -> Execution:
    execution, _ = start_execution(store_definition(source), payload if payload is not None else {})
    return drive(execution, until=until)


def bodies(service, path: str) -> list:
    return [r.body for r in service.calls("POST", path)]


# --- Templates: TemplateContextBuilder (saga/TemplateRenderer.kt) -------------------------------------


def test_prev_reflects_last_completed_step(service):
    """TemplateContextBuilderTest `prev reflects last completed step`."""
    service.script("POST", "/checkout", Reply(200, {"v": "body_checkout"}))
    service.script("POST", "/payment", Reply(200, {"v": "body_payment"}))
    source = graph(
        "checkout",
        task("checkout", f"{service.url}/checkout", next_node="payment"),
        task("payment", f"{service.url}/payment", next_node="read"),
        task("read", f"{service.url}/read", {"prev": "{{prev.body.v}}"}),
    )
    assert run(source).status == "SUCCEEDED"
    assert bodies(service, "/read") == [{"prev": "body_payment"}]


def test_steps_list_is_in_index_order(service):
    """TemplateContextBuilderTest `steps list is in index order`: also step.<index> and step.<name>."""
    text = "{{steps.0.name}},{{steps.1.name}},{{step.0.name}},{{step.1.body.v}},{{step.checkout.up.body.v}}"
    service.script("POST", "/checkout", Reply(200, {"v": "c"}))
    service.script("POST", "/payment", Reply(200, {"v": "p"}))
    source = graph(
        "checkout",
        task("checkout", f"{service.url}/checkout", next_node="payment"),
        task("payment", f"{service.url}/payment", next_node="read"),
        task("read", f"{service.url}/read", text),
    )
    assert run(source).status == "SUCCEEDED"
    assert bodies(service, "/read") == ["checkout,payment,checkout,p,c"]


def test_step_lookup_by_name_uses_newest_entry_when_step_name_is_repeated(service):
    """TemplateContextBuilderTest `step lookup by name uses newest entry when step name is repeated at
    different indices`: a loop runs `count` twice; its switch and the last step read the newer answer."""
    service.script("POST", "/count", Reply(200, {"n": 1}), Reply(200, {"n": 2}))
    again = {"<": [{"var": "step.count.body.n"}, 2]}
    source = graph(
        "count",
        task("count", f"{service.url}/count", next_node="route"),
        switch("route", [("again", again, "count")], default="done"),
        task("done", f"{service.url}/done", {"n": "{{step.count.body.n}}", "seen": "{{steps.2.name}}"}),
    )
    execution = run(source)
    assert execution.status == "SUCCEEDED"
    assert [row[0] for row in history(execution)] == ["count", "route", "count", "route", "done"]
    assert bodies(service, "/done") == [{"n": "2", "seen": "count"}]


def test_v2_node_b_sees_node_a_response_body_via_template_without_sleep(service):
    """E2ESyncSagaTest `v2 node B sees node A response body via template without sleep`."""
    service.script("POST", "/step/nodeA", Reply(200, {"data": "hello-from-a"}))
    body = {"fromA": "{{nodes.nodeA.response.body.data}}", "fromPrev": "{{prev.body.data}}"}
    source = graph(
        "nodeA",
        task("nodeA", f"{service.url}/step/nodeA", {"step": "nodeA"}, next_node="nodeB"),
        task("nodeB", f"{service.url}/step/nodeB", body),
    )
    assert run(source).status == "SUCCEEDED"
    assert bodies(service, "/step/nodeB") == [{"fromA": "hello-from-a", "fromPrev": "hello-from-a"}]


def test_values_render_as_html_escaped_text_and_missing_ones_as_nothing(service):
    """MustacheTemplateRenderer (saga/TemplateRenderer.kt) is mustache.java: {{x}} is HTML-escaped, {{{x}}}
    and {{& x}} are not; every value is Java text (JsonElementUtils.kt toAny); a missing one is empty."""
    payload = {"q": "a&b<c>\"'=`", "amount": 150.5, "count": 3, "big": 1e7, "ok": True, "items": [1, "x"]}
    payload["obj"] = {"k": "v", "n": None}
    text = (
        "{{payload.q}}|{{{payload.q}}}|{{& payload.q}}|{{payload.amount}}|{{payload.count}}|{{payload.big}}"
        "|{{payload.ok}}|{{{payload.items}}}|{{{payload.obj}}}|{{payload.missing}}|{{payload.q.deeper}}|{{! note}}"
    )
    url = f"{service.url}/t/{{{{payload.count}}}}?x={{{{payload.obj.k}}}}"
    source = graph("t", task("t", url, text), name="escape")
    source["nodes"][0]["action"]["request"]["headers"] = {"X-Q": "{{payload.q}}"}
    assert run(source, payload).status == "SUCCEEDED"
    (sent,) = service.calls("POST", "/t/3")
    assert sent.query == {"x": ["v"]} or sent.query == {"x": "v"}
    assert sent.header("X-Q") == "a&amp;b&lt;c&gt;&quot;&#39;&#61;&#96;"
    expected = (
        "a&amp;b&lt;c&gt;&quot;&#39;&#61;&#96;|a&b<c>\"'=`|a&b<c>\"'=`|150.5|3|1.0E7|true|[1, x]|{k=v, n=null}|||"
    )
    assert sent.body == expected


def test_an_object_body_is_sent_as_its_json_text_with_every_value_as_text(service):
    """SagaDefinition.kt TemplateStringSerializer: an object body is its JSON text, rendered as text,
    so a number read from the payload arrives as a string (E2ESwitchSagaTest's bodies)."""
    body = {"orderId": "{{payload.orderId}}", "amount": "{{payload.amount}}", "method": "{{payload.paymentMethod}}"}
    source = graph("pay", task("pay", f"{service.url}/pay", body))
    assert run(source, {"orderId": 7, "amount": 10.25, "paymentMethod": "pix"}).status == "SUCCEEDED"
    (sent,) = service.calls("POST", "/pay")
    assert sent.body == {"orderId": "7", "amount": "10.25", "method": "pix"}
    assert sent.header("Content-Type") == "application/json"


def test_a_template_string_body_is_sent_as_the_raw_text_it_renders_to(service):
    """scripts/saga_demo/run_square_chain.py: the body "{{payload.initial_value}}" is sent as `3`, and the
    next step's body reads the previous answer by index (step.0.up.body.result)."""
    service.script("POST", "/square", Reply(200, {"result": 9}), Reply(200, {"result": 81}))
    no_type = {}
    steps = []
    for index, value in enumerate(["{{payload.initial_value}}", "{{step.0.up.body.result}}"]):
        up = call(f"{service.url}/square", value, headers=no_type)
        steps.append({"name": f"square-{index + 1}", "up": up, "down": call(f"{service.url}/undo", verb="DELETE")})
    source = saga(max_attempts=0, name="square-chain") | {"steps": steps}
    assert run(source, {"initial_value": 3}).status == "SUCCEEDED"
    first, second = service.calls("POST", "/square")
    assert (first.body, second.body) == (3, 9)  # the text `3` and `9`, which the service reads as JSON
    assert first.header("Content-Type") == "text/plain; charset=UTF-8"  # Ktor's setBody(String) default


def test_saga_identity_step_name_and_phase(service):
    """TemplateContextBuilder.build: sagaId, sagaName, sagaVersion, stepName and phase (UP, DOWN)."""
    service.default("POST", "/b", Reply(500, {"error": "no"}))
    text = "{{sagaId}}|{{sagaName}}|{{sagaVersion}}|{{stepName}}|{{phase}}"
    steps = [
        {"name": "a", "up": call(f"{service.url}/a", text), "down": call(f"{service.url}/a-undo", text)},
        {"name": "b", "up": call(f"{service.url}/b", text), "down": call(f"{service.url}/b-undo", text)},
    ]
    source = saga(name="ids") | {"version": "2024.1", "steps": steps}
    source["onFailureCallback"] = call(f"{service.url}/failed", text)  # WorkflowExecutor.kt, executeCompensating
    execution = run(source)
    assert execution.status == "COMPENSATED"
    assert bodies(service, "/failed") == [f"{execution.pk}|ids|2024.1|onFailureCallback|DOWN"]
    assert bodies(service, "/a") == [f"{execution.pk}|ids|2024.1|a|UP"]
    assert bodies(service, "/b") == [f"{execution.pk}|ids|2024.1|b|UP"]
    assert bodies(service, "/a-undo") == [f"{execution.pk}|ids|2024.1|a|DOWN"]
    assert bodies(service, "/b-undo") == []  # b never succeeded: nothing to undo


def test_a_switch_shares_its_index_with_the_task_after_it():
    """WorkflowExecutor.kt numbers a step by the tasks completed before it (completedNodes.size), so step.<index>
    names the task that came after a switch, while steps lists both (TemplateContextBuilder.build)."""
    state = {
        "trail": ["a", "route", "b"],
        "results": {"a": {"response": {"body": 1}}, "route": {"switch": {"target": "b"}}, "b": {"response": {}}},
        "node": "c",
        "phase": "forward",
    }
    context = original.template_context({"version": "v1"}, {}, {"id": "x", "definition": "d"}, state)
    assert [(entry["index"], entry["name"]) for entry in context["steps"]] == [(0, "a"), (1, "route"), (1, "b")]
    assert context["step"]["1"]["name"] == "b" and context["step"]["route"]["body"] == {"target": "b"}
    assert context["prev"] == {"body": None} and (context["stepName"], context["phase"]) == ("c", "UP")


# --- Switch: SwitchNodeHandler.kt ----------------------------------------------------------------


def payment_switch(url: str, var: str) -> dict:
    approved = {"==": [{"var": var}, "approved"]}
    return graph(
        "pay",
        task("pay", f"{url}/pay", next_node="route"),
        switch("route", [("approved", approved, "ship")], default="cancel"),
        task("ship", f"{url}/ship", {"case": "{{prev.body.matchedCase}}", "default": "{{prev.body.usedDefault}}"}),
        task("cancel", f"{url}/cancel"),
        name="switch-on-results",
    )


@pytest.mark.parametrize(
    ("var", "test_name"),
    [
        ("prev.body.status", "matching on prev body works"),
        ("step.pay.body.status", "matching on step by name works"),
        ("step.0.body.status", "matching on step by index works"),
        ("nodes.pay.response.body.status", "matching on node response body works"),
    ],
)
def test_switch_rules_read_what_the_switch_handler_gives_them(service, var, test_name):
    """SwitchNodeHandlerTest (each case named in ``test_name``); the next step reads the switch's own
    result, {target, matchedCase, usedDefault}, as prev (WorkflowExecutor.kt buildSwitchTraceJson)."""
    service.script("POST", "/pay", Reply(200, {"status": "approved"}))
    execution = run(payment_switch(service.url, var))
    assert execution.status == "SUCCEEDED", test_name
    assert [r.path for r in service.requests] == ["/pay", "/ship"]
    assert bodies(service, "/ship") == [{"case": "approved", "default": "false"}]
    route = execution.steps.get(node_id="route")
    assert route.detail == {"matched_case": 0, "next": "ship"}


@pytest.mark.parametrize(
    ("method", "taken", "test_name"),
    [
        ("pix", "/pix-payment", "switch routes to pix branch when paymentMethod is pix"),
        ("card", "/card-payment", "switch routes to card branch when paymentMethod is card"),
        ("boleto", "/fallback-payment", "switch routes to default branch for unknown paymentMethod"),
    ],
)
def test_switch_routes_by_payment_method(service, method, taken, test_name):
    """E2ESwitchSagaTest (each case named in ``test_name``); SwitchNodeHandlerTest `first case matches returns
    first target`, `second case matches when first is false`, `no case matches uses default target`."""
    cases = [(m, {"==": [{"var": "payload.paymentMethod"}, m]}, f"{m}-payment") for m in ("pix", "card")]
    body = {"node": "x", "method": "{{payload.paymentMethod}}"}
    payments = [task(f"{m}-payment", f"{service.url}/{m}-payment", body, "notify") for m in ("pix", "card", "fallback")]
    source = graph(
        "choose-payment",
        switch("choose-payment", cases, default="fallback-payment"),
        *payments,
        task("notify", f"{service.url}/notify"),
    )
    assert run(source, {"paymentMethod": method, "orderId": "ord-test"}).status == "SUCCEEDED", test_name
    assert [r.path for r in service.requests] == [taken, "/notify"]
    assert service.requests[0].body == {"node": "x", "method": method}


def test_a_rule_that_raises_is_false_and_the_default_is_taken(service):
    """JsonLogicEvaluator.evaluateBool (saga/workflow/JsonLogicEvaluator.kt): any error is false; any object
    or list is true. (A native switch whose rule raises fails the node instead, SPEC 2.3.)"""
    broken = {"/": [1, 0]}
    source = graph(
        "route",
        switch("route", [("broken", broken, "a"), ("object", {"var": "payload"}, "b")], default="a"),
        task("a", f"{service.url}/a"),
        task("b", f"{service.url}/b"),
    )
    assert run(source, {"anything": 1}).status == "SUCCEEDED"
    assert [r.path for r in service.requests] == ["/b"]


# --- Callbacks: CallbackReceiver.kt ---------------------------------------------------------------


def authorize(url: str, callback: dict, next_node="capture", **action) -> dict:
    body = {"orderId": "{{payload.orderId}}", "callbackUrl": "{{runtime.callback.url}}",
            "callbackToken": "{{runtime.callback.token}}"}  # fmt: skip
    node = task("authorize", f"{url}/async-step/authorize", body, next_node, mode="async", callback=callback)
    node["action"] |= action
    node["compensation"] = call(f"{url}/step/authorize?phase=down", {"compensate": "authorize"})
    return node


def async_flow(url: str, callback=None, max_attempts=1, **action) -> dict:
    """E2EAsyncCallbackTest's definition: authorize (async) -> capture -> notify."""
    callback = {"timeoutMillis": 30_000} | (callback or {})
    return graph(
        "authorize",
        authorize(url, callback, acceptedStatusCodes=[202], **action),
        task("capture", f"{url}/step/capture", {"step": "capture"}, "notify"),
        task("notify", f"{url}/step/notify", {"step": "notify"}),
        max_attempts=max_attempts,
        name="async-flow",
    )


def start_waiting(service, source, payload=None) -> tuple[Execution, str]:
    service.default("POST", "/async-step/authorize", Reply(202, {"id": "tx-1"}))
    execution = run(source, payload or {"orderId": "ord-async-001"}, until={"WAITING"})
    token = service.calls("POST", "/async-step/authorize")[-1].body["callbackToken"]
    return execution, token


def test_valid_callback_resumes_saga_to_succeeded(service):
    """E2EAsyncCallbackTest `valid callback resumes saga to SUCCEEDED`; CallbackReceiverTest `valid callback for
    non-terminal node re-enqueues as InProgress targeting next node`. The rule reads callback.body and input."""
    rule = {"and": [{"==": [{"var": "callback.body.status"}, "approved"]},
                    {"==": [{"var": "callback.body.order"}, {"var": "input.orderId"}]}]}  # fmt: skip
    execution, token = start_waiting(service, async_flow(service.url, {"successWhen": rule}))
    answer = receive_callback(token, {"status": "approved", "amount": "100.00", "order": "ord-async-001"})
    assert answer.status == 202
    execution = drive(execution)
    assert execution.status == "SUCCEEDED"
    assert [r.path for r in service.requests][-2:] == ["/step/capture", "/step/notify"]


def test_a_callback_the_success_rule_rejects_fails_the_node(service):
    """CallbackReceiver.kt: successWhen false is a failure; with maxAttempts 0 the saga compensates
    (the original's FAILED is Trama's COMPENSATED)."""
    rule = {"==": [{"var": "callback.body.status"}, "approved"]}
    execution, token = start_waiting(service, async_flow(service.url, {"successWhen": rule}, max_attempts=0))
    assert receive_callback(token, {"status": "declined"}).status == 202
    assert drive(execution).status == "COMPENSATED"
    assert service.calls("POST", "/step/capture") == []


def test_failure_condition_callback_is_a_failure(service):
    """CallbackReceiverTest `failure-condition callback inserts CALLBACK step result with success=false`:
    failureWhen {"===": [1, 1]} fails every callback."""
    source = async_flow(service.url, {"failureWhen": {"===": [1, 1]}}, max_attempts=0)
    execution, token = start_waiting(service, source)
    assert receive_callback(token, {"status": "declined"}).status == 202
    execution = drive(execution)
    assert execution.status == "COMPENSATED"
    step = execution.steps.get(node_id="authorize", phase="forward")
    assert step.status == "failed" and step.detail["callback"] == {"status": "declined"}


@pytest.mark.parametrize("body", [{"status": "failed"}, {"status": "running"}, {"status": "weird"}, {}])
def test_a_callback_without_rules_always_succeeds(service, body):
    """CallbackReceiver.kt: "no conditions configured → accept any callback as success"; the original knows no
    status vocabulary and no heartbeat, so a native 400 or heartbeat is a success here. CallbackReceiverTest
    `valid callback for terminal node finalizes saga without re-enqueueing`: the last node ends it."""
    source = graph("authorize", authorize(service.url, {"timeoutMillis": 30_000}, next_node=None), name="terminal")
    execution, token = start_waiting(service, source)
    assert receive_callback(token, body).status == 202
    assert drive(execution).status == "SUCCEEDED"


# --- Retries and compensation: RetryPolicy.kt, WorkflowExecutor.kt -----------------------------------


def test_failed_step_starts_compensation_after_retries_exhausted(service):
    """DefaultSagaExecutorTest `failed step starts compensation after retries exhausted` (maxAttempts 1: one
    retry, then compensation); E2ESyncSagaTest `retries exhausted triggers compensation and FAILED`."""
    service.default("POST", "/step2", Reply(500, "fail"))
    execution = run(saga(("step1", f"{service.url}/step1"), ("step2", f"{service.url}/step2"), max_attempts=1))
    assert execution.status == "COMPENSATED"
    assert history(execution) == [
        ("step1", "forward", 1, "succeeded"),
        ("step2", "forward", 1, "failed"),
        ("step2", "forward", 2, "failed"),
        ("step1", "compensation", 1, "succeeded"),
    ]


def test_compensation_calls_happen_in_reverse_node_order(service):
    """E2ESyncSagaTest `compensation calls happen in reverse node order`."""
    service.default("POST", "/step3", Reply(500, {"error": "always fails"}))
    steps = [(f"step{i}", f"{service.url}/step{i}") for i in (1, 2, 3)]
    execution = run(saga(*steps, max_attempts=1))
    assert execution.status == "COMPENSATED"
    assert [r.path for r in service.requests if r.method == "DELETE"] == ["/step2", "/step1"]


@pytest.mark.parametrize("status", [404, 409, 302])
def test_step_failure_retried_then_succeeds_whatever_the_status(service, status):
    """E2ESyncSagaTest `step failure retried then succeeds`; DefaultSagaExecutorTest `retry enqueues when step
    fails`. The original retries any status outside the success codes, 4xx and 3xx too (TaskNodeHandler.kt)."""
    service.script("POST", "/charge", Reply(status, {"error": "transient"}))
    execution = run(saga(("reserve", f"{service.url}/reserve"), ("charge", f"{service.url}/charge"), max_attempts=2))
    assert execution.status == "SUCCEEDED"
    assert len(service.calls("POST", "/charge")) == 2


def test_async_step_receiving_non_accepted_status_code_triggers_failure_path(service):
    """E2EAsyncCallbackTest `async step receiving non-accepted status code triggers failure path`: a 200 where
    202 is expected is a failed call, retried (maxAttempts 1) and then compensated."""
    service.default("POST", "/async-step/authorize", Reply(200, {"status": "ok"}))
    execution = run(async_flow(service.url, max_attempts=1))
    assert execution.status == "COMPENSATED"
    assert len(service.calls("POST", "/async-step/authorize")) == 2
    assert service.calls("POST", "/step/authorize") == []  # never accepted: nothing to undo


def test_async_callback_timeout_is_retried_then_moves_saga_to_failure(service):
    """E2EAsyncCallbackTest `async callback timeout moves saga to failure`; DefaultSagaExecutorTest `callback
    timeout records CALLBACK step result with success=false`. WorkflowExecutor.kt executeWaitingCallback
    hands a timeout to the retry policy: the request is sent again (maxAttempts 1), then compensation."""
    service.default("POST", "/async-step/authorize", Reply(202, {"id": "tx"}))
    execution = run(async_flow(service.url, {"timeoutMillis": 300}, max_attempts=1))
    assert execution.status == "COMPENSATED"
    assert len(service.calls("POST", "/async-step/authorize")) == 2
    assert [row[3] for row in history(execution) if row[0] == "authorize" and row[1] == "forward"] == [
        "timed_out",
        "timed_out",
    ]


def test_retry_of_a_compensated_v1_saga_runs_it_again_from_its_first_step(service):
    """app/Application.kt `POST /workflows/{id}/retry`: a v1 saga is run again from step 0 (the failed step index
    it would start from is never recorded), under the same id."""
    service.script("POST", "/charge", Reply(500, {"error": "declined"}))
    source = saga(("reserve", f"{service.url}/reserve"), ("charge", f"{service.url}/charge"))
    execution = run(source, {"orderId": "o-1"})
    assert execution.status == "COMPENSATED"
    retried = retry_execution(execution.pk)
    assert retried.status == "RUNNING" and retried.error is None
    execution = drive(retried)
    assert execution.status == "SUCCEEDED"
    assert [(r.method, r.path) for r in service.requests] == [
        ("POST", "/reserve"),
        ("POST", "/charge"),
        ("DELETE", "/reserve"),
        ("POST", "/reserve"),
        ("POST", "/charge"),
    ]
    assert history(execution)[-2:] == [("reserve", "forward", 1, "succeeded"), ("charge", "forward", 1, "succeeded")]


def test_a_compensated_v2_workflow_is_not_retried(service):
    """app/Application.kt answers 422 "retry of v2 workflow definitions is not yet supported"."""
    service.default("POST", "/a", Reply(500, {"error": "no"}))
    execution = run(graph("a", task("a", f"{service.url}/a")))
    assert execution.status == "COMPENSATED"
    with pytest.raises(TransitionRefused):
        retry_execution(execution.pk)
