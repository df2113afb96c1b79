"""POST definitions/simulate/: the real state machine against mocks, on a simulated clock.

Every test checks the answer; the ones that point URLs at a live TestService also
check that it saw no request and that no row was written.
"""

from datetime import datetime, timedelta

import pytest

from definitions.models import Definition
from definitions.validation import validate_definition
from executions.machine import backoff_seconds
from executions.models import Execution, Step
from executions.simulation import simulate
from tests.support.definitions import DefinitionFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/definitions/simulate/"


def run(api, body, expect=200):
    response = api.post(URL, body, format="json")
    assert response.status_code == expect, response.json()
    return response.json()


def order_saga(url="http://svc.local"):
    return {
        "name": "orders",
        "kind": "saga",
        "steps": [
            {
                "id": "reserve",
                "request": {"method": "POST", "url": f"{url}/reservations", "body": {"order": "{{payload.orderId}}"}},
                "compensation": {
                    "method": "DELETE",
                    "url": f"{url}/reservations/{{{{nodes.reserve.response.body.id}}}}",
                },
            },
            {
                "id": "charge",
                "request": {
                    "method": "POST",
                    "url": f"{url}/charges",
                    "headers": {"Authorization": "Bearer {{secrets.PAYMENTS_KEY}}"},
                    "body": {"reservation": "{{nodes.reserve.response.body.id}}", "amount": "{{payload.amount}}"},
                },
                "compensation": {"method": "POST", "url": f"{url}/refunds"},
                "retry": {"max_attempts": 3, "backoff_s": 600},
            },
            {"id": "ship", "request": {"method": "POST", "url": f"{url}/shipments"}},
        ],
    }


RESERVED = {"reserve": {"status": 201, "body": {"id": "r-1"}}}


def history(answer):
    return [(s["node_id"], s["phase"], s["attempt"], s["status"]) for s in answer["steps"]]


def test_runs_the_saga_rendering_each_request_without_calling_or_storing_anything(api, service, monkeypatch):
    monkeypatch.setenv("TRAMA_SECRET_PAYMENTS_KEY", "sk-live-123")
    counts = (Definition.objects.count(), Execution.objects.count(), Step.objects.count())
    mocks = {"reserve": {"status": 201, "body": {"id": "r-9"}}, "ship": {"body": {"tracking": "T-1"}}}
    body = {"definition": order_saga(service.url), "input": {"orderId": "A-1", "amount": 42}, "mocks": mocks}
    answer = run(api, body)

    assert answer["status"] == "SUCCEEDED"
    assert answer["output"] == {"tracking": "T-1"}
    assert answer["error"] is None
    assert answer["path"] == ["reserve", "charge", "ship"]
    assert answer["calls"] == 3
    assert history(answer) == [("reserve", "forward", 1, "succeeded"), ("charge", "forward", 1, "succeeded"),
                               ("ship", "forward", 1, "succeeded")]  # fmt: skip
    charge = answer["steps"][1]
    assert charge["request"]["url"] == f"{service.url}/charges"
    assert charge["request"]["body"] == {"reservation": "r-9", "amount": 42}  # the number keeps its type
    assert charge["request"]["headers"] == {"Authorization": "Bearer ***"}  # the secret is never shown
    assert charge["response"] == {"status": 200, "headers": {}, "body": charge["request"]["body"]}  # default: an echo
    assert answer["steps"][0]["response"]["body"] == {"id": "r-9"}
    assert service.requests == []  # the answer came after the whole dry run: any call would be recorded
    assert (Definition.objects.count(), Execution.objects.count(), Step.objects.count()) == counts


def test_fail_times_fails_then_succeeds_and_back_off_costs_no_time(api):
    answer = run(
        api,
        {
            "definition": order_saga(),
            "input": {"orderId": 1, "amount": 5},
            "mocks": RESERVED | {"charge": {"fail_times": 2, "fail_status": 503}},
        },
    )
    # The two back-offs (~600 s and ~1200 s) passed on the simulated clock, exactly as the retry policy
    # says: had the dry run waited for them in real time, it would not have answered yet.
    policy = validate_definition(order_saga()).spec["nodes"]["charge"]["retry"]
    at = [(datetime.fromisoformat(s["started_at"]), datetime.fromisoformat(s["finished_at"])) for s in answer["steps"]]
    gaps = [at[2][0] - at[1][1], at[3][0] - at[2][1]]  # charge attempt 1 -> 2 -> 3
    delays = [backoff_seconds(policy, attempt, key="simulation:charge:forward") for attempt in (1, 2)]
    assert gaps == [timedelta(seconds=delay) for delay in delays]
    assert answer["status"] == "SUCCEEDED"
    assert [(s["node_id"], s["attempt"], s["status"]) for s in answer["steps"]] == [
        ("reserve", 1, "succeeded"), ("charge", 1, "failed"), ("charge", 2, "failed"), ("charge", 3, "succeeded"),
        ("ship", 1, "succeeded")]  # fmt: skip
    assert answer["steps"][1]["response"]["status"] == 503
    assert answer["steps"][1]["error"] == {"failure": "status", "message": "HTTP 503"}
    assert answer["path"] == ["reserve", "charge", "ship"]  # retries are one visit
    assert answer["calls"] == 5
    assert answer["steps"][3]["started_at"] > answer["steps"][2]["finished_at"]


def test_a_node_that_fails_for_good_compensates_in_reverse_order_with_compensation_mocks(api):
    mocks = {
        "reserve": {"status": 201, "body": {"id": "r-1"}, "compensation": {"status": 204, "body": None}},
        "ship": {"status": 400, "body": {"error": "no address"}},
    }
    answer = run(api, {"definition": order_saga(), "input": {"orderId": 1, "amount": 5}, "mocks": mocks})
    assert answer["status"] == "COMPENSATED"
    assert answer["error"]["node"] == "ship" and answer["error"]["message"] == "HTTP 400"
    assert history(answer)[-3:] == [("ship", "forward", 1, "failed"), ("charge", "compensation", 1, "succeeded"),
                                    ("reserve", "compensation", 1, "succeeded")]  # fmt: skip
    assert answer["steps"][-1]["request"]["url"] == "http://svc.local/reservations/r-1"
    assert answer["steps"][-1]["response"]["status"] == 204
    assert answer["path"] == ["reserve", "charge", "ship"]


def test_a_compensation_that_fails_for_good_leaves_the_run_failed(api):
    mocks = {"ship": {"status": 500}, "reserve": RESERVED["reserve"] | {"compensation": {"status": 500}}}
    answer = run(api, {"definition": order_saga(), "input": {"orderId": 1, "amount": 5}, "mocks": mocks})
    assert answer["status"] == "FAILED"
    assert answer["error"]["phase"] == "compensation" and answer["error"]["node"] == "reserve"


def test_a_mocked_timeout_is_retried_like_a_network_timeout(api):
    answer = run(
        api,
        {
            "definition": order_saga(),
            "input": {"orderId": 1, "amount": 5},
            "mocks": RESERVED | {"charge": {"timeout": True}},
        },
    )
    assert answer["status"] == "COMPENSATED"
    charge = [s for s in answer["steps"] if s["node_id"] == "charge" and s["phase"] == "forward"]
    assert [s["attempt"] for s in charge] == [1, 2, 3]
    assert all(s["error"]["failure"] == "timeout" and s["response"] is None for s in charge)


def graph(**pix_extra):
    return {
        "name": "checkout",
        "kind": "graph",
        "start": "route",
        "nodes": {
            "route": {
                "type": "switch",
                "cases": [{"when": {"==": [{"var": "payload.method"}, "pix"]}, "next": "pix"}],
                "default": "card",
            },
            "pix": {
                "type": "async_task",
                "request": {"method": "POST", "url": "http://svc.local/pix", "body": {"cb": "{{callback.url}}"}},
                "compensation": {"method": "DELETE", "url": "http://svc.local/pix"},
                "timeout_s": 900,
                "next": "cool",
            }
            | pix_extra,
            "card": {"type": "task", "request": {"method": "POST", "url": "http://svc.local/card"}, "next": "cool"},
            "cool": {"type": "sleep", "duration_s": 86400, "next": "done"},
            "done": {"type": "succeed", "output": {"paid": "{{nodes.pix.callback.body.output.paid}}"}},
        },
    }


def test_async_node_waits_for_the_mocked_callback_and_a_day_long_sleep_is_instant(api):
    mocks = {"pix": {"callback": {"status": "succeeded", "output": {"paid": True}}}}
    answer = run(api, {"definition": graph(), "input": {"method": "pix"}, "mocks": mocks})
    assert answer["status"] == "SUCCEEDED"
    assert answer["output"] == {"paid": True}
    assert answer["path"] == ["route", "pix", "cool", "done"]
    route, pix, cool = answer["steps"][:3]
    assert route["detail"] == {"matched_case": 0, "next": "pix"}
    assert pix["response"]["status"] == 202 and pix["detail"] == {
        "callback": {"status": "succeeded", "output": {"paid": True}}
    }
    assert pix["request"]["body"]["cb"].endswith("/api/v1/callbacks/simulated/")
    assert cool["status"] == "succeeded" and cool["finished_at"][:10] > cool["started_at"][:10]
    assert answer["calls"] == 1


def test_callback_failure_and_callback_timeout_follow_the_node_policies(api):
    failed = run(
        api, {"definition": graph(), "input": {"method": "pix"}, "mocks": {"pix": {"callback": {"status": "failed"}}}}
    )
    assert failed["status"] == "COMPENSATED"
    assert history(failed)[1:] == [("pix", "forward", 1, "failed")]  # not done: nothing to compensate

    timed_out = run(
        api, {"definition": graph(on_timeout="card"), "input": {"method": "pix"}, "mocks": {"pix": {"timeout": True}}}
    )
    # card -> cool -> done, whose output reads nodes.pix.callback: missing, so the run fails (nothing to compensate)
    assert timed_out["status"] == "COMPENSATED"
    assert history(timed_out)[1] == ("pix", "forward", 1, "timed_out")
    assert timed_out["path"][:3] == ["route", "pix", "card"]


def test_the_switch_default_and_a_stored_definition_by_name_and_version(api):
    DefinitionFactory(name="checkout", version=1, source=graph(), spec=validate_definition(graph()).spec)
    answer = run(api, {"name": "checkout", "version": 1, "input": {"method": "card"}})
    assert answer["path"] == ["route", "card", "cool", "done"]
    assert answer["status"] == "COMPENSATED"  # the succeed output reads the pix callback, which never came
    assert "nodes.pix.callback.body.output.paid" in answer["error"]["message"]
    assert run(api, {"name": "checkout"})["path"][0] == "route"  # latest version


def test_a_missing_template_path_fails_the_step_with_the_path_named(api):
    answer = run(api, {"definition": order_saga(), "input": {}})
    assert answer["status"] == "COMPENSATED"
    assert answer["steps"][0]["error"]["failure"] == "template"
    assert "payload.orderId" in answer["steps"][0]["error"]["message"]


def test_without_mocks_each_call_answers_what_the_definition_reads_from_it_over_an_echo_of_its_request(api):
    answer = run(api, {"definition": order_saga(), "input": {"orderId": "A-1", "amount": 5}})
    assert answer["status"] == "SUCCEEDED"  # with empty bodies, charge's {{nodes.reserve.response.body.id}} failed
    reserve, charge = answer["steps"][0], answer["steps"][1]
    assert reserve["response"]["body"] == {"id": "reserve.id", "order": "A-1"}  # the path read, then the echo
    assert charge["request"]["body"] == {"reservation": "reserve.id", "amount": 5}
    assert answer["steps"][2]["response"]["body"] == {}  # ship sends no body and nobody reads its answer
    assert (
        run(api, {"definition": order_saga(), "input": {"orderId": "A-1", "amount": 5}, "mocks": RESERVED})["steps"][1][
            "request"
        ]["body"]["reservation"]
        == "r-1"
    )  # a mocked body still wins


def test_max_steps_stops_a_loop_and_says_so(api):
    loop = {
        "name": "poll",
        "kind": "graph",
        "start": "check",
        "nodes": {
            "check": {"type": "task", "request": {"method": "GET", "url": "http://svc.local/status"}, "next": "ready"},
            "ready": {
                "type": "switch",
                "cases": [{"when": {"==": [{"var": "nodes.check.response.body.done"}, True]}, "next": "end"}],
                "default": "wait",
            },
            "wait": {"type": "sleep", "duration_s": 60, "next": "check"},
            "end": {"type": "succeed"},
        },
    }
    answer = run(api, {"definition": loop, "max_steps": 20, "mocks": {"check": {"body": {"done": False}}}})
    assert len(answer["steps"]) == 20
    assert answer["status"] in ("RUNNING", "SLEEPING")
    assert "max_steps" in answer["error"]["message"]


def test_an_invalid_definition_is_a_400_with_every_error(api):
    source = order_saga()
    source["steps"][0]["request"]["url"] = "ftp://x"
    source["steps"][1]["retry"]["max_attempts"] = 0
    answer = run(api, {"definition": source}, expect=400)
    paths = [e["path"] for e in answer["errors"]]
    assert paths == ["definition.steps[0].request.url", "definition.steps[1].retry.max_attempts"]


def test_mocks_for_unknown_nodes_or_with_bad_fields_are_a_400_naming_them(api):
    mocks = {"nope": {}, "charge": {"status": 999, "colour": "red"}, "ship": {"compensation": {}}}
    answer = run(api, {"definition": order_saga(), "mocks": mocks}, expect=400)
    by_path = {e["path"]: e["message"] for e in answer["errors"]}
    assert "unknown node 'nope'" in by_path["mocks.nope"]
    assert set(by_path) == {"mocks.nope", "mocks.charge.colour", "mocks.charge.status", "mocks.ship.compensation"}


def test_a_mock_for_a_node_that_makes_no_call_is_refused(api):
    answer = run(api, {"definition": graph(), "mocks": {"route": {"status": 200}}}, expect=400)
    assert answer["errors"][0]["path"] == "mocks.route"


def test_a_mocked_callback_with_an_unknown_status_is_a_400_naming_it(api):
    mocks = {"pix": {"callback": {"status": "FAILED"}}}
    answer = run(api, {"definition": graph(), "input": {"method": "pix"}, "mocks": mocks}, expect=400)
    message = 'status must be "succeeded", "failed" or "running" (or left out), got "FAILED"'
    assert answer["errors"] == [{"path": "mocks.pix.callback.status", "message": message}]


def test_body_must_name_exactly_one_definition_and_unknown_names_are_404(api):
    assert run(api, {"input": {}}, expect=400)["errors"][0]["path"] == "definition"
    assert run(api, {"definition": order_saga(), "name": "orders"}, expect=400)["errors"][0]["path"] == "definition"
    assert "no-such" in run(api, {"name": "no-such"}, expect=404)["detail"]
    DefinitionFactory(name="orders", version=1, spec=validate_definition(order_saga()).spec, source=order_saga())
    missing = run(api, {"name": "orders", "version": 7}, expect=404)["detail"]
    assert missing == "Definition 'orders' has no version 7; the latest is 1."


def test_upstream_style_definitions_simulate_with_the_originals_templates(api):
    """The body is the original's text, rendered by its rules (TemplateRenderer.kt): every value is text."""
    down = {"verb": "DELETE", "url": "http://svc.local/r"}
    upstream = {  # the original's v1 model (SagaDefinition.kt); see tests/test_upstream.py
        "name": "orders",
        "version": "v1",
        "failureHandling": {"type": "retry", "maxAttempts": 0, "delayMillis": 0},
        "steps": [
            {
                "name": "reserve",
                "up": {"verb": "POST", "url": "http://svc.local/r", "body": {"o": "{{payload.o}}"}},
                "down": down,
            },
            {"name": "ship", "up": {"verb": "POST", "url": "http://svc.local/s"}, "down": down},
        ],
    }
    answer = run(api, {"definition": upstream, "input": {"o": 5}})
    assert answer["path"] == ["reserve", "ship"] and answer["steps"][0]["request"]["body"] == '{"o":"5"}'


def test_an_upstream_style_callback_mock_may_say_anything(api):
    """CallbackReceiver.kt: without rules every callback succeeds, so any mocked body is a valid outcome."""
    node = {"kind": "task", "id": "pay", "action": {"mode": "async", "callback": {"timeoutMillis": 1000},
            "request": {"verb": "POST", "url": "http://svc.local/pay"}}}  # fmt: skip
    upstream = {"name": "pay", "version": "v1", "entrypoint": "pay", "nodes": [node],
                "failureHandling": {"type": "retry", "maxAttempts": 0, "delayMillis": 0}}  # fmt: skip
    mocks = {"pay": {"status": 202, "callback": {"status": "approved"}}}
    answer = run(api, {"definition": upstream, "input": {}, "mocks": mocks})
    assert answer["path"] == ["pay"] and answer["status"] == "SUCCEEDED"


def test_simulate_is_pure_and_deterministic_for_the_same_clock():
    from datetime import UTC, datetime

    spec = validate_definition(order_saga()).spec
    now = datetime(2030, 1, 1, tzinfo=UTC)
    first = simulate(spec, {"orderId": 1}, {"charge": {"fail_times": 1}}, now=now).as_dict()
    assert first == simulate(spec, {"orderId": 1}, {"charge": {"fail_times": 1}}, now=now).as_dict()
    assert first["steps"][0]["started_at"] == "2030-01-01T00:00:00+00:00"


def test_requires_a_token(api):
    from rest_framework.test import APIClient

    assert APIClient().post(URL, {"definition": order_saga()}, format="json").status_code == 401


def fan():
    task = {"type": "task", "request": {"method": "POST", "url": "http://svc.local/a"}}
    source = {
        "name": "fan",
        "kind": "graph",
        "start": "fork",
        "nodes": {"fork": {"type": "parallel", "branches": ["a", "b", "c"], "next": "end"},
                  "a": {**task, "next": "a2", "compensation": {"method": "DELETE", "url": "http://svc.local/a"}},
                  "a2": {"type": "sleep", "duration_s": 60},
                  "b": {**task, "request": {**task["request"], "body": {"order": "{{payload.order}}"}}},
                  "c": task,
                  "end": {"type": "succeed", "output": {"b": "{{nodes.b.response.body}}"}}},
    }  # fmt: skip
    return source


def test_parallel_branches_are_simulated_and_joined(api):
    answer = run(api, {"definition": fan(), "input": {"order": "A-17"}})
    assert answer["status"] == "SUCCEEDED"
    branches = [(s["branch"], s["node_id"], s["phase"], s["status"]) for s in answer["steps"] if s["branch"]]
    assert branches == [("a", "a", "forward", "succeeded"), ("a", "a2", "forward", "succeeded"),
                        ("b", "b", "forward", "succeeded"), ("c", "c", "forward", "succeeded")]  # fmt: skip
    assert answer["path"] == ["fork", "a", "a2", "b", "c", "end"]
    assert answer["calls"] == 3
    fork = answer["steps"][0]
    assert (fork["node_id"], fork["branch"], fork["status"]) == ("fork", None, "succeeded")
    assert answer["output"] == {"b": {"order": "A-17"}}  # the join sees the branches' results (b echoed its body)


def test_a_failing_branch_cancels_the_rest_and_compensates_the_others(api):
    answer = run(api, {"definition": fan(), "input": {"order": "A-17"}, "mocks": {"b": {"status": 500}}})
    assert answer["status"] == "COMPENSATED"
    ran = [(s["branch"], s["node_id"], s["phase"], s["status"]) for s in answer["steps"]]
    assert ("c", "c", "forward", "succeeded") not in ran  # cancelled before it ran
    assert ran[-1] == (None, "a", "compensation", "succeeded")  # the parent compensates branch a after the join
    assert "branch 'b'" in answer["error"]["message"]


# --- The answer is bounded: mocked bodies count against the response body cap, the whole answer against its own --


def test_a_mock_body_over_the_response_body_cap_answers_400_naming_it(api, settings):
    settings.TRAMA_RESPONSE_BODY_CAP = 20
    at_cap, over = {"id": "x" * 11}, {"id": "x" * 12}  # {"id":"…"} is 9 bytes around the text
    order = {"orderId": 1, "amount": 5}
    accepted = run(api, {"definition": order_saga(), "input": order, "mocks": {"reserve": {"body": at_cap}}})
    assert accepted["status"] == "SUCCEEDED"
    mocks = {"reserve": {"body": over, "compensation": {"body": over}}}
    answer = run(api, {"definition": order_saga(), "input": order, "mocks": mocks}, expect=400)
    assert answer["errors"] == [
        {"path": "mocks.reserve.body", "message": "the body is 21 bytes as JSON, over TRAMA_RESPONSE_BODY_CAP (20)"},
        {"path": "mocks.reserve.compensation.body",
         "message": "the body is 21 bytes as JSON, over TRAMA_RESPONSE_BODY_CAP (20)"},
    ]  # fmt: skip


def polling_loop():
    """poll -> again? -> poll ... until payload.done: with done false it loops until max_steps."""
    return {
        "name": "poller",
        "kind": "graph",
        "start": "poll",
        "nodes": {
            "poll": {"type": "task", "request": {"method": "GET", "url": "http://svc.local/status"}, "next": "again"},
            "again": {
                "type": "switch",
                "cases": [{"when": {"!": {"var": "payload.done"}}, "next": "poll"}],
                "default": "end",
            },
            "end": {"type": "succeed"},
        },
    }


def test_a_loop_repeating_a_mocked_body_stops_at_the_answer_cap_with_a_400(api):
    # Unbounded, 10,000 steps would repeat this 60 KB body 5,000 times: a 300 MB answer to a 60 KB request.
    mocks = {"poll": {"body": {"blob": "x" * 60_000}}}
    answer = run(api, {"definition": polling_loop(), "input": {"done": False}, "mocks": mocks, "max_steps": 10_000},
                 expect=400)  # fmt: skip
    [error] = answer["errors"]
    assert error["path"] == "max_steps"
    prefix = "the answer would be larger than TRAMA_SIMULATION_MAX_BYTES (4194304 bytes) after "
    suffix = " steps: lower max_steps or use smaller mocks and input"
    assert error["message"].startswith(prefix) and error["message"].endswith(suffix)
    assert 100 <= int(error["message"][len(prefix) : -len(suffix)]) <= 150  # ~70 polls of 60 KB, and the switches


def test_an_answer_just_under_the_answer_cap_is_given(api, settings):
    settings.TRAMA_SIMULATION_MAX_BYTES = 65_536
    mocks = {"poll": {"body": {"blob": "x" * 60_000}}}
    done = run(api, {"definition": polling_loop(), "input": {"done": True}, "mocks": mocks})
    assert done["status"] == "SUCCEEDED" and done["path"] == ["poll", "again", "end"]
    looping = run(api, {"definition": polling_loop(), "input": {"done": False}, "mocks": mocks}, expect=400)
    assert looping["errors"][0]["message"].startswith("the answer would be larger than TRAMA_SIMULATION_MAX_BYTES")
