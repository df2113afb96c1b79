"""The original Trama's demo scripts (its ``scripts/``), replayed against our compatibility API.

Each test sends the HTTP sequence its script sends (same routes, same bodies, rebuilt here from
reading them) to a live Trama (runserver-like live_server, a real worker and timer loop), with a
demo service of our own (tests/support/service.py) in place of the scripts' Flask servers, and
asserts the outcome the script checks and its README states. The client authenticates the way an
unmodified script can: the API token in the base URL (``http://trama:<token>@host``), which
``requests`` sends as HTTP Basic.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

from tests.support import Callback, Reply
from trama_project.models import ApiToken

pytestmark = [pytest.mark.workers, pytest.mark.django_db(transaction=True)]
JSON = {"Content-Type": "application/json"}
FINAL = {"SUCCEEDED", "FAILED", "CORRUPTED"}


class SagaApi:
    """The scripts' client: ``requests`` against a base URL, nothing else."""

    def __init__(self, base_url: str):
        self.base_url = base_url.rstrip("/")

    def post(self, path: str, payload: dict) -> requests.Response:
        return requests.post(f"{self.base_url}{path}", json=payload, timeout=10)

    def get(self, path: str) -> requests.Response:
        return requests.get(f"{self.base_url}{path}", timeout=10)

    def wait_final(self, saga_id: str, timeout_s: float = 40) -> tuple[dict, list[str]]:
        """Poll GET /workflows/{id} as the scripts do (204 = not there yet); the final body and each status seen."""
        deadline, seen = time.time() + timeout_s, []
        while time.time() < deadline:
            answer = self.get(f"/workflows/{saga_id}")
            if answer.status_code != 204:
                answer.raise_for_status()
                status = answer.json()["status"]
                if not seen or seen[-1] != status:
                    seen.append(status)
                if status in FINAL:
                    return answer.json(), seen
            time.sleep(0.1)
        raise AssertionError(f"saga {saga_id} not final within {timeout_s}s; statuses seen {seen}")


@pytest.fixture
def trama(live_server, worker_pool, settings) -> SagaApi:
    """Our base URL with a token in it, a worker and a timer loop (retry back-offs come due through it)."""
    settings.TRAMA_PUBLIC_URL = live_server.url
    settings.TRAMA_EGRESS_ALLOW = ["127.0.0.1"]
    worker_pool.env |= {"TRAMA_PUBLIC_URL": live_server.url, "TRAMA_EGRESS_ALLOW": "127.0.0.1"}
    worker_pool.start_worker()
    worker_pool.start_timers()
    _, raw = ApiToken.mint("demo scripts")
    parts = urlsplit(live_server.url)
    return SagaApi(urlunsplit(parts._replace(netloc=f"trama:{raw}@{parts.netloc}")))


def step_reply(status: int = 200) -> Reply:
    """saga_demo/flask_server.py's /step/<name>: echoes the step, phase and status it answers with."""
    return Reply(status, lambda r: {"step": r.path.rsplit("/", 1)[-1], "phase": r.query.get("phase"), "status": status})


# --- scripts/saga_demo ---------------------------------------------------------------------------------


def saga_demo_definition(svc: str, version: str) -> dict:
    """run_saga.py's make_definition: reserve, then charge, which reads reserve's answer."""

    def step(name: str, with_prev: bool = False) -> dict:
        prev = "&from={{step.0.up.body.step}}" if with_prev else ""
        up_body = {"prevStep": "{{step.0.up.body.step}}", "prevStatus": "{{step.0.up.body.status}}"}
        down_body = {"prevStep": "{{step.0.up.body.step}}", "compensate": name}
        headers = {
            **JSON,
            "X-Fail-Step": "{{payload.fail_step}}",
            "X-Fail-Phase": "{{payload.fail_phase}}",
            "X-Fail-Mode": "once",
        }
        return {
            "name": name,
            "up": {
                "url": f"{svc}/step/{name}?phase=up{prev}",
                "verb": "POST",
                "headers": headers,
                "body": up_body if with_prev else {"step": name},
            },
            "down": {
                "url": f"{svc}/step/{name}?phase=down{prev}",
                "verb": "POST",
                "headers": headers,
                "body": down_body if with_prev else {"compensate": name},
            },
        }

    return {
        "name": "demo-saga2",
        "version": version,
        "failureHandling": {"type": "retry", "maxAttempts": 1, "delayMillis": 200},
        "steps": [step("reserve"), step("charge", with_prev=True)],
        "onSuccessCallback": {
            "url": f"{svc}/callback/success",
            "verb": "POST",
            "headers": JSON,
            "body": {"status": "ok"},
        },
        "onFailureCallback": {
            "url": f"{svc}/callback/failure",
            "verb": "POST",
            "headers": JSON,
            "body": {"status": "failed"},
        },
    }


def run_saga(api: SagaApi, version: str, fail_step: str = "", fail_phase: str = "") -> tuple[dict, list[str]]:
    """run_saga.py main(): POST .../demo-saga2/<version>/run, then poll until final."""
    payload = {"payload": {"fail_step": fail_step, "fail_phase": fail_phase}}
    answer = api.post(f"/workflows/definitions/demo-saga2/{version}/run", payload)
    answer.raise_for_status()
    return api.wait_final(answer.json()["id"])


def square_chain_definition(svc: str, version: str, count: int = 4) -> dict:
    """run_square_chain.py's make_definition: each step squares the previous step's result."""
    steps = []
    for index in range(count):
        value = "{{payload.initial_value}}" if index == 0 else f"{{{{step.{index - 1}.up.body.result}}}}"
        steps.append(
            {
                "name": f"square-{index + 1}",
                "up": {"url": f"{svc}/square", "verb": "POST", "headers": JSON, "body": value},
                "down": {
                    "url": f"{svc}/compensate",
                    "verb": "POST",
                    "headers": JSON,
                    "body": {"step": f"square-{index + 1}", "lastKnown": value},
                },
            }
        )
    return {
        "name": "square-chain-demo",
        "version": version,
        "failureHandling": {"type": "retry", "maxAttempts": 1, "delayMillis": 200},
        "steps": steps,
        "onSuccessCallback": {
            "url": f"{svc}/done_square",
            "verb": "POST",
            "headers": JSON,
            "body": {"status": "done", "sagaId": "{{sagaId}}", "final": f"{{{{step.{count - 1}.up.body.result}}}}"},
        },
    }


def squared(recorded) -> dict:
    """run_square_chain.py's /square: a raw number (or {"value": n}) in, {"input", "result"} out."""
    value = float(recorded.body["value"] if isinstance(recorded.body, dict) else recorded.body)
    result = value * value
    return {
        "input": int(value) if value.is_integer() else value,
        "result": int(result) if result.is_integer() else result,
    }


def test_saga_demo_scripts_run_unmodified(trama, service):
    svc = service.url
    service.global_default = step_reply()
    for version in ("v1", "v2", "v3"):  # run_saga.py's scenarios run stored definitions; they are stored first
        assert trama.post("/workflows/definitions", saga_demo_definition(svc, version)).status_code == 200

    final, _ = run_saga(trama, "v1")  # --scenario success
    assert final["status"] == "SUCCEEDED"
    charge = service.calls("POST", "/step/charge")[0]
    assert (charge.query["from"], charge.body["prevStep"]) == ("reserve", "reserve")  # {{step.0.up.body.step}}
    assert service.calls("POST", "/callback/success")[0].body == {"status": "ok"}

    # --scenario fail_up: charge answers 500 once (X-Fail-Mode: once), failureHandling retries it once, as the
    # original's RetryPolicy.kt does: SUCCEEDED. (The README expects FAILED or CORRUPTED; the original ends the same.)
    service.script("POST", "/step/charge", step_reply(500))
    final, _ = run_saga(trama, "v2", "charge", "up")
    assert final["status"] == "SUCCEEDED"
    # A failure that persists past the retry ends as the README states: FAILED, reserve compensated.
    service.reset()
    service.global_default = step_reply()
    service.script("POST", "/step/charge", step_reply(500), step_reply(500))
    final, _ = run_saga(trama, "v2", "charge", "up")
    assert (final["status"], final["failureDescription"]) == ("FAILED", "HTTP 500")
    assert [r.query["phase"] for r in service.calls("POST", "/step/reserve")] == ["up", "down"]
    assert service.calls("POST", "/callback/failure")[0].body == {"status": "failed"}
    saga_id = final["id"]
    steps = trama.get(f"/workflows/{saga_id}/steps").json()
    assert [(s["stepName"], s["phase"], s["success"]) for s in steps] == [
        ("reserve", "UP", True),
        ("charge", "UP", False),
        ("charge", "UP", False),
        ("reserve", "DOWN", True),
    ]
    calls = trama.get(f"/workflows/{saga_id}/steps/calls").json()
    assert [(c["stepName"], c["attempt"], c["statusCode"]) for c in calls] == [
        ("reserve", 1, 200),
        ("charge", 1, 500),
        ("charge", 2, 500),
        ("reserve", 1, 200),
    ]

    # run_square_chain.py run: store, run with initial_value 2.0 (argparse float); 4, 16, 256, 65536.
    service.default("POST", "/square", Reply(200, squared))
    version = f"v{int(time.time())}"
    assert trama.post("/workflows/definitions", square_chain_definition(svc, version)).status_code == 200
    answer = trama.post(f"/workflows/definitions/square-chain-demo/{version}/run", {"payload": {"initial_value": 2.0}})
    assert answer.status_code == 200
    final, _ = trama.wait_final(answer.json()["id"])
    assert final["status"] == "SUCCEEDED"
    assert [r.body for r in service.calls("POST", "/square")] == [2.0, 4, 16, 256]
    done = service.calls("POST", "/done_square")[0].body
    # "{{…}}" inside a quoted JSON string renders as text in the original (mustache over the body's JSON text).
    assert done == {"status": "done", "sagaId": answer.json()["id"], "final": "65536"}


# --- scripts/workflow_demo -------------------------------------------------------------------------------


def async_callback(body: dict, delay_s: float = 0.0) -> Callback:
    """The Flask servers' async steps: POST the body's callbackUrl with its callbackToken as X-Callback-Token."""
    return Callback(
        body,
        delay_s=delay_s,
        token_in="header",
        token_header="X-Callback-Token",
        url=lambda r: r.body["callbackUrl"],
        token=lambda r: r.body["callbackToken"],
    )


def v2_task(svc: str, node_id: str, path: str, next_node: str | None = None, body: dict | None = None) -> dict:
    """run_switch_demo.py / run_async_demo.py's sync task with its compensation."""
    node = {
        "kind": "task",
        "id": node_id,
        "action": {
            "mode": "sync",
            "request": {
                "url": f"{svc}/step/{path}?phase=up",
                "verb": "POST",
                "headers": JSON,
                "body": body or {"orderId": "{{payload.orderId}}", "node": node_id},
            },
        },
        "compensation": {
            "url": f"{svc}/step/{path}?phase=down",
            "verb": "POST",
            "headers": JSON,
            "body": {"node": node_id, "action": "compensate"},
        },
    }
    return node | ({"next": next_node} if next_node else {})


def async_demo_definition(svc: str) -> dict:
    """run_async_demo.py: authorize (async) -> capture -> notify; completion callbacks as JSON text."""
    authorize = v2_task(svc, "authorize", "authorize", "capture")
    authorize["action"] = {
        "mode": "async",
        "request": {
            "url": f"{svc}/async-step/authorize",
            "verb": "POST",
            "headers": JSON,
            "body": {
                "orderId": "{{payload.orderId}}",
                "amount": "{{payload.amount}}",
                "callbackUrl": "{{runtime.callback.url}}",
                "callbackToken": "{{runtime.callback.token}}",
            },
        },
        "acceptedStatusCodes": [202],
        "callback": {"timeoutMillis": 30000},
    }
    return {
        "name": "payment-async-v2",
        "version": "v1",
        "failureHandling": {"type": "retry", "maxAttempts": 2, "delayMillis": 200},
        "entrypoint": "authorize",
        "nodes": [authorize, v2_task(svc, "capture", "capture", "notify"), v2_task(svc, "notify", "notify")],
        "onSuccessCallback": {
            "url": f"{svc}/callback/success",
            "verb": "POST",
            "headers": JSON,
            "body": '{"status":"ok","orderId":"{{payload.orderId}}"}',
        },
        "onFailureCallback": {
            "url": f"{svc}/callback/failure",
            "verb": "POST",
            "headers": JSON,
            "body": '{"status":"failed","orderId":"{{payload.orderId}}"}',
        },
    }


def switch_demo_definition(svc: str) -> dict:
    """run_switch_demo.py: a switch on payload.paymentMethod to pix, card or the fallback, then notify."""
    body = {"orderId": "{{payload.orderId}}", "method": "{{payload.paymentMethod}}"}
    cases = [
        {"name": method, "when": {"==": [{"var": "payload.paymentMethod"}, method]}, "target": f"{method}-payment"}
        for method in ("pix", "card")
    ]
    payments = [v2_task(svc, f"{m}-payment", f"{m}-payment", "notify", body) for m in ("pix", "card", "fallback")]
    return {
        "name": "checkout-v2",
        "version": "v1",
        "failureHandling": {"type": "retry", "maxAttempts": 2, "delayMillis": 100},
        "entrypoint": "choose-payment",
        "nodes": [
            {"kind": "switch", "id": "choose-payment", "cases": cases, "default": "fallback-payment"},
            *payments,
            v2_task(svc, "notify", "notify", body=body),
        ],
        "onSuccessCallback": {
            "url": f"{svc}/callback/success",
            "verb": "POST",
            "headers": JSON,
            "body": '{"status":"ok","orderId":"{{payload.orderId}}"}',
        },
    }


def test_workflow_demo_scripts_run_unmodified(trama, service):
    svc = service.url
    callback = async_callback({"status": "success", "step": "authorize", "processedBy": "demo"}, delay_s=1.0)
    service.default(
        "POST", "/async-step/authorize", Reply(202, {"step": "authorize", "status": 202}, callback=callback)
    )

    # run_async_demo.py: POST /workflows/run; the service answers 202 and calls back a second later.
    started = trama.post(
        "/workflows/run",
        {"definition": async_demo_definition(svc), "payload": {"orderId": "ord-async-001", "amount": "250.00"}},
    )
    assert started.status_code == 200
    saga_id = started.json()["id"]
    final, seen = trama.wait_final(saga_id)
    assert final["status"] == "SUCCEEDED"
    assert "WAITING_CALLBACK" in seen  # the script prints each transition
    sent = service.calls("POST", "/async-step/authorize")[0].body
    assert sent["callbackUrl"] == f"{trama_base(trama)}/workflows/{saga_id}/node/authorize/callback"
    assert [status for status, _ in service.callback_results] == [202]
    assert [r.path for r in service.calls("POST")][1:] == ["/step/capture", "/step/notify", "/callback/success"]
    assert service.calls("POST", "/callback/success")[0].body == {"status": "ok", "orderId": "ord-async-001"}
    phases = [(s["stepName"], s["phase"]) for s in trama.get(f"/workflows/{saga_id}/steps").json()]
    assert phases == [("authorize", "CALLBACK"), ("capture", "UP"), ("notify", "UP")]

    # run_switch_demo.py: register (409 tolerated), then one inline run per payment method.
    definition = switch_demo_definition(svc)
    registered = trama.post("/workflows/definitions", {k: v for k, v in definition.items() if k != "onSuccessCallback"})
    assert registered.status_code in (200, 201, 409)
    for method, order, branch in [
        ("pix", "ord-001", "pix-payment"),
        ("card", "ord-002", "card-payment"),
        ("boleto", "ord-003", "fallback-payment"),
    ]:
        answer = trama.post(
            "/workflows/run", {"definition": definition, "payload": {"orderId": order, "paymentMethod": method}}
        )
        assert answer.status_code == 200
        final, _ = trama.wait_final(answer.json()["id"])
        assert final["status"] == "SUCCEEDED", method
        names = [s["stepName"] for s in trama.get(f"/workflows/{final['id']}/steps").json()]
        assert names == ["choose-payment", branch, "notify"], method


def trama_base(api: SagaApi) -> str:
    """The base URL without the token (TRAMA_PUBLIC_URL, which callback URLs start with)."""
    parts = urlsplit(api.base_url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1]))


# --- scripts/full_demo ---------------------------------------------------------------------------------


def full_demo_definition(svc: str) -> dict:
    """save_definition.py's DEFINITION: validate -> choose-payment -> pix-payment | card-payment (async) -> notify."""
    order = {"orderId": "{{payload.orderId}}"}

    def task(node_id: str, path: str, body: dict, next_node: str | None, compensate: bool = True) -> dict:
        node = {
            "kind": "task",
            "id": node_id,
            "action": {
                "mode": "sync",
                "request": {"url": f"{svc}{path}", "verb": "POST", "headers": JSON, "body": body},
            },
        }
        if compensate:
            node["compensation"] = {
                "url": f"{svc}/step/{node_id}?phase=down",
                "verb": "POST",
                "headers": JSON,
                "body": order,
            }
        return node | ({"next": next_node} if next_node else {})

    card = task("card-payment", "/async-step/card-payment", {}, "notify")
    card["action"] = {
        "mode": "async",
        "request": {
            "url": f"{svc}/async-step/card-payment",
            "verb": "POST",
            "headers": JSON,
            "body": {
                **order,
                "method": "card",
                "callbackUrl": "{{runtime.callback.url}}",
                "callbackToken": "{{runtime.callback.token}}",
            },
        },
        "acceptedStatusCodes": [202],
        "callback": {"timeoutMillis": 60000},
    }
    cases = [
        {"name": m, "when": {"==": [{"var": "payload.paymentMethod"}, m]}, "target": f"{m}-payment"}
        for m in ("pix", "card")
    ]
    return {
        "name": "checkout-full-demo",
        "version": "v1",
        "failureHandling": {"type": "retry", "maxAttempts": 2, "delayMillis": 500},
        "entrypoint": "validate",
        "nodes": [
            task("validate", "/step/validate", {**order, "amount": "{{payload.amount}}"}, "choose-payment"),
            {"kind": "switch", "id": "choose-payment", "cases": cases, "default": "pix-payment"},
            task("pix-payment", "/step/pix-payment", {**order, "method": "pix"}, "notify"),
            card,
            task("notify", "/step/notify", order, None, compensate=False),
        ],
        "onSuccessCallback": {
            "url": f"{svc}/callback/success",
            "verb": "POST",
            "headers": JSON,
            "body": {**order, "result": "succeeded"},
        },
        "onFailureCallback": {
            "url": f"{svc}/callback/failure",
            "verb": "POST",
            "headers": JSON,
            "body": {**order, "result": "failed"},
        },
    }


def test_full_demo_scripts_run_unmodified(trama, service):
    svc = service.url
    definition = full_demo_definition(svc)
    callback = async_callback({"status": "approved", "method": "card"}, delay_s=0.5)
    service.default("POST", "/async-step/card-payment", Reply(202, {"queued": True}, callback=callback))

    # save_definition.py: POST /workflows/definitions, then the id it prints can be fetched.
    saved = trama.post("/workflows/definitions", definition)
    assert saved.status_code == 200
    assert (saved.json()["name"], saved.json()["version"]) == ("checkout-full-demo", "v1")
    assert trama.get(f"/workflows/definitions/{saved.json()['id']}").json()["definition"] == definition

    # run_demo.py --payment-method pix, then card: POST /workflows/run with the same DEFINITION.
    for method, path in [("pix", "/step/pix-payment"), ("card", "/async-step/card-payment")]:
        payload = {"orderId": f"ord-{method}", "amount": "149.90", "paymentMethod": method}
        answer = trama.post("/workflows/run", {"definition": definition, "payload": payload})
        assert answer.status_code == 200
        final, _ = trama.wait_final(answer.json()["id"], timeout_s=60)
        assert final["status"] == "SUCCEEDED", (method, final)
        assert service.calls("POST", path)[-1].body["orderId"] == f"ord-{method}"
        assert service.calls("POST", "/callback/success")[-1].body == {
            "orderId": f"ord-{method}",
            "result": "succeeded",
        }
    assert [status for status, _ in service.callback_results] == [202]


# --- wake and retry through the original's routes -------------------------------------------------------


def test_sleep_is_woken_and_a_corrupted_saga_retried_through_the_original_routes(trama, service):
    svc = service.url
    nap = {"kind": "sleep", "id": "nap", "durationMillis": 3_600_000, "next": "ship"}
    sleepy = {
        "name": "sleepy",
        "version": "v1",
        "failureHandling": {"type": "retry", "maxAttempts": 0, "delayMillis": 1},
        "entrypoint": "nap",
        "nodes": [nap, v2_task(svc, "ship", "ship")],
    }
    started = trama.post("/workflows/run", {"definition": sleepy, "payload": {"orderId": "o-1"}}).json()["id"]
    deadline = time.time() + 30
    while trama.get(f"/workflows/{started}").json()["status"] != "SLEEPING":
        assert time.time() < deadline, "never SLEEPING"
        time.sleep(0.1)
    assert requests.post(f"{trama.base_url}/workflows/{started}/wake", timeout=10).status_code == 202
    final, _ = trama.wait_final(started)
    assert final["status"] == "SUCCEEDED"
    assert requests.post(f"{trama.base_url}/workflows/{started}/wake", timeout=10).status_code == 409

    # charge fails, then reserve's compensation fails for good: CORRUPTED. The service recovers; a retry
    # resumes the compensation that failed, and the saga ends FAILED (compensated), as the original names it.
    service.global_default = step_reply()
    service.script("POST", "/step/charge", step_reply(500))
    service.script("POST", "/step/reserve", step_reply(200), step_reply(500))
    saga = saga_demo_definition(svc, "v1") | {"failureHandling": {"type": "retry", "maxAttempts": 0, "delayMillis": 1}}
    payload = {"fail_step": "", "fail_phase": ""}
    started = trama.post("/workflows/run", {"definition": saga, "payload": payload}).json()["id"]
    final, _ = trama.wait_final(started)
    assert final["status"] == "CORRUPTED"
    retried = requests.post(f"{trama.base_url}/workflows/{started}/retry", timeout=10)
    assert (retried.status_code, retried.json()) == (202, {"id": started, "status": "REQUEUED"})
    final, _ = trama.wait_final(started)
    assert final["status"] == "FAILED"
    assert [r.query["phase"] for r in service.calls("POST", "/step/reserve")] == ["up", "down", "down"]
