"""Async callbacks (SPEC section 4) end to end: a real service, the receiver on a live server, the worker code."""

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import requests
from django.utils import timezone

from definitions.services import store_definition
from executions.callback_tokens import callback_url, mint_callback_token
from executions.models import Execution
from executions.services import advance_execution, start_execution
from tests.support import wait_until
from tests.support.engine import drive
from tests.support.service import Callback, Recorded, Reply
from trama_project.models import ApiToken

pytestmark = pytest.mark.django_db(transaction=True)

PIX = {"method": "pix", "amount": 10, "order": "o-1"}


@pytest.fixture(autouse=True)
def _public_url(settings, live_server):
    settings.TRAMA_PUBLIC_URL = live_server.url
    settings.TRAMA_EGRESS_ALLOW = ["127.0.0.1"]


def checkout(base: str, ship_body=None, name: str = "checkout", **pix) -> dict:
    """reserve (undone by DELETE /reserve) -> route -> pix (async, undone by POST /refund) | card -> ship."""
    pix_node = {
        "type": "async_task",
        "request": {
            "method": "POST",
            "url": f"{base}/pix",
            "body": {"amount": "{{payload.amount}}", "cb_url": "{{callback.url}}", "cb_token": "{{callback.token}}"},
            "success_status": [202, 200],
        },
        "compensation": {"method": "POST", "url": f"{base}/refund"},
        "timeout_s": 30,
        "on_timeout": "compensate",
        "next": "ship",
    } | pix
    return {
        "name": name,
        "kind": "graph",
        "start": "reserve",
        "nodes": {
            "reserve": {
                "type": "task",
                "request": {"method": "POST", "url": f"{base}/reserve"},
                "compensation": {"method": "DELETE", "url": f"{base}/reserve"},
                "next": "route",
            },
            "route": {
                "type": "switch",
                "cases": [{"when": {"==": [{"var": "payload.method"}, "pix"]}, "next": "pix"}],
                "default": "card",
            },
            "pix": pix_node,
            "card": {"type": "task", "request": {"method": "POST", "url": f"{base}/card"}, "next": "ship"},
            "ship": {
                "type": "task",
                "request": {
                    "method": "POST",
                    "url": f"{base}/ship",
                    "body": ship_body or {"order": "{{payload.order}}"},
                },
            },
        },
    }


def begin(service, *replies: Reply, payload=None, **source) -> Execution:
    if replies:
        service.script("POST", "/pix", *replies)
    definition = store_definition(checkout(service.url, **source))
    execution, _ = start_execution(definition, PIX if payload is None else payload)
    return execution


def waiting(execution: Execution) -> Execution:
    execution = drive(execution, until={"WAITING"})
    assert execution.status == "WAITING", execution.state
    return execution


def pix_request(service, execution: Execution, attempt: int = 1) -> Recorded:
    key = f"{execution.pk}:pix:{attempt}"
    found = [r for r in service.calls("POST", "/pix") if r.header("Idempotency-Key") == key]
    assert len(found) == 1, [r.header("Idempotency-Key") for r in service.calls("POST", "/pix")]
    return found[0]


def token_of(service, execution: Execution, attempt: int = 1) -> str:
    return pix_request(service, execution, attempt).header("X-Trama-Callback-Token")


def post_callback(token: str, body, **kwargs) -> requests.Response:
    return requests.post(callback_url(token), json=body, timeout=10, **kwargs)


def history(execution: Execution) -> list[tuple]:
    return [(s.node_id, s.phase, s.attempt, s.status) for s in execution.steps.order_by("seq")]


def paths(service) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in service.requests]


def snapshot(execution: Execution) -> tuple:
    execution.refresh_from_db()
    steps = list(execution.steps.order_by("seq").values("seq", "status", "detail", "finished_at"))
    return execution.status, execution.state, execution.updated_at, steps


# --- The happy path -----------------------------------------------------------------------


def test_pix_walk_through_waits_for_the_callback_then_runs_the_next_node(service, live_server):
    execution = waiting(begin(service, Reply(202, {"accepted": True})))

    # WAITING is visible while the service works; the history shows the wait.
    assert execution.current_node == "pix"
    assert history(execution)[-1] == ("pix", "forward", 1, "waiting")
    assert paths(service) == [("POST", "/reserve"), ("POST", "/pix")]

    sent = pix_request(service, execution)
    url, token = sent.header("X-Trama-Callback-Url"), sent.header("X-Trama-Callback-Token")
    assert token and url == f"{live_server.url}/api/v1/callbacks/{token}/"
    assert sent.body == {"amount": 10, "cb_url": url, "cb_token": token}  # {{callback.url}} / {{callback.token}}
    assert sent.header("Idempotency-Key") == f"{execution.pk}:pix:1"

    answer = requests.post(url, json={"status": "succeeded", "output": {"paid": True}}, timeout=10)
    assert answer.status_code == 202, answer.text
    assert answer.json()["execution"] == str(execution.pk)

    execution = drive(execution)
    assert execution.status == "SUCCEEDED"
    assert paths(service) == [("POST", "/reserve"), ("POST", "/pix"), ("POST", "/ship")]
    assert service.calls("POST", "/ship")[0].body == {"order": "o-1"}
    assert history(execution) == [
        ("reserve", "forward", 1, "succeeded"),
        ("route", "forward", 1, "succeeded"),
        ("pix", "forward", 1, "succeeded"),
        ("ship", "forward", 1, "succeeded"),
    ]
    pix = execution.steps.get(node_id="pix")
    assert pix.response_status == 202 and pix.response_body == {"accepted": True}
    assert pix.detail["callback"] == {"status": "succeeded", "output": {"paid": True}}
    assert execution.output == {"ok": True, "path": "/ship", "echo": {"order": "o-1"}}


def test_the_card_branch_never_waits(service):
    execution = drive(begin(service, payload={"method": "card", "order": "o-2"}))
    assert execution.status == "SUCCEEDED"
    assert paths(service) == [("POST", "/reserve"), ("POST", "/card"), ("POST", "/ship")]


def test_callback_sent_later_resumes_the_execution(service):
    callback = Callback({"status": "succeeded"}, delay_s=0.5)
    execution = waiting(begin(service, Reply(202, callback=callback)))
    execution = drive(execution)
    assert execution.status == "SUCCEEDED"
    assert [status for status, _ in service.wait_for_callbacks(1)] == [202]
    assert len(service.calls("POST", "/ship")) == 1


def test_callback_sent_before_the_reply_is_applied_exactly_once(service):
    callback = Callback({"status": "succeeded", "output": {"early": True}}, before_reply=True)
    execution = drive(begin(service, Reply(202, callback=callback)))
    assert execution.status == "SUCCEEDED"
    assert [status for status, _ in service.callback_results] == [202]
    assert paths(service) == [("POST", "/reserve"), ("POST", "/pix"), ("POST", "/ship")]  # no resend, one ship
    pix = execution.steps.get(node_id="pix")
    assert (pix.status, pix.detail["callback"]) == ("succeeded", {"status": "succeeded", "output": {"early": True}})


def test_callback_before_the_reply_keeps_the_reply_in_history_and_template_data(service):
    callback = Callback({"status": "succeeded"}, before_reply=True)
    ship_body = {"payment": "{{nodes.pix.response.body.id}}"}
    execution = drive(begin(service, Reply(202, {"id": "p-1"}, callback=callback), ship_body=ship_body))
    assert [status for status, _ in service.callback_results] == [202]
    pix = execution.steps.get(node_id="pix", phase="forward")
    assert (pix.response_status, pix.response_body) == (202, {"id": "p-1"})
    assert execution.status == "SUCCEEDED", execution.error
    assert service.calls("POST", "/ship")[0].body == {"payment": "p-1"}


def test_the_same_callback_twice_at_once_is_accepted_once_and_answered_200_the_second_time(service):
    callback = Callback({"status": "succeeded"}, delay_s=0.3, times=2)
    execution = waiting(begin(service, Reply(202, callback=callback)))
    service.wait_for_callbacks(2)
    execution = drive(execution)
    assert execution.status == "SUCCEEDED"
    assert sorted(status for status, _ in service.callback_results) == [200, 202]
    assert len(service.calls("POST", "/ship")) == 1
    assert execution.steps.filter(node_id="pix").count() == 1


def test_token_in_the_header_with_the_bare_callbacks_url(service, live_server):
    callback = Callback(
        {"status": "succeeded"}, delay_s=0.2, token_in="header", url=f"{live_server.url}/api/v1/callbacks/"
    )
    execution = drive(begin(service, Reply(202, callback=callback)))
    assert execution.status == "SUCCEEDED"
    assert [status for status, _ in service.callback_results] == [202]


def test_callback_without_a_token_is_a_403(service, live_server):
    execution = waiting(begin(service, Reply(202)))
    answer = requests.post(f"{live_server.url}/api/v1/callbacks/", json={"status": "succeeded"}, timeout=10)
    assert answer.status_code == 403
    assert Execution.objects.get(pk=execution.pk).status == "WAITING"


# --- Outcomes ---------------------------------------------------------------------------------


def test_failed_callback_retries_with_a_new_token_and_the_old_token_is_refused(service):
    retry = {"max_attempts": 2, "backoff_s": 0.05}
    execution = waiting(begin(service, Reply(202), Reply(202), retry=retry))
    first = token_of(service, execution, 1)
    assert post_callback(first, {"status": "failed", "output": {"reason": "declined"}}).status_code == 202

    execution = waiting(execution)  # back-off, then attempt 2 is sent and waits
    second = token_of(service, execution, 2)
    assert second != first
    assert execution.state["attempt"] == 2
    assert post_callback(first, {"status": "succeeded"}).status_code == 409  # attempt 1 no longer waits
    execution.refresh_from_db()
    assert execution.status == "WAITING"

    assert post_callback(second, {"status": "succeeded"}).status_code == 202
    execution = drive(execution)
    assert execution.status == "SUCCEEDED"
    assert history(execution) == [
        ("reserve", "forward", 1, "succeeded"),
        ("route", "forward", 1, "succeeded"),
        ("pix", "forward", 1, "failed"),
        ("pix", "forward", 2, "succeeded"),
        ("ship", "forward", 1, "succeeded"),
    ]
    # The accepted callback again is idempotent.
    assert post_callback(second, {"status": "succeeded"}).status_code == 200


def test_failed_callback_without_retries_compensates(service):
    callback = Callback({"status": "failed", "output": {"reason": "declined"}}, delay_s=0.2)
    execution = drive(begin(service, Reply(202, callback=callback)))
    assert execution.status == "COMPENSATED"
    assert [status for status, _ in service.callback_results] == [202]
    # pix failed, so only reserve is undone; ship never ran.
    assert paths(service) == [("POST", "/reserve"), ("POST", "/pix"), ("DELETE", "/reserve")]
    assert execution.error["node"] == "pix"
    pix = execution.steps.get(node_id="pix")
    assert (pix.status, pix.detail["callback"]["output"]) == ("failed", {"reason": "declined"})


def test_the_error_a_failed_callback_reports_is_the_executions_error(service):
    callback = Callback({"status": "failed", "error": "card declined"}, delay_s=0.2)
    execution = drive(begin(service, Reply(202, callback=callback)))
    assert execution.status == "COMPENSATED"
    assert paths(service) == [("POST", "/reserve"), ("POST", "/pix"), ("DELETE", "/reserve")]
    assert execution.error == {
        "node": "pix",
        "attempt": 1,
        "failure": "callback",
        "message": "callback reported failure: card declined",
        "error": "card declined",
    }
    pix = execution.steps.get(node_id="pix")
    assert pix.error == {"message": "callback reported failure: card declined", "error": "card declined"}


def test_a_structured_callback_error_keeps_its_json_and_its_message(service):
    reported = {"code": "DECLINED", "message": "insufficient funds"}
    callback = Callback({"status": "failed", "error": reported}, delay_s=0.2)
    execution = drive(begin(service, Reply(202, callback=callback)))
    assert execution.status == "COMPENSATED"
    assert execution.error["message"] == "callback reported failure: insufficient funds"
    assert execution.error["error"] == reported


@pytest.mark.parametrize(
    ("body", "final"),
    [
        ({"state": "PAID"}, "SUCCEEDED"),
        ({"state": "PAID", "status": "failed"}, "SUCCEEDED"),  # the rules decide, not status
        ({"state": "PAID", "status": "APPROVED"}, "SUCCEEDED"),  # with rules, status is the service's own word
        ({"state": "REJECTED", "status": "succeeded"}, "COMPENSATED"),  # failure_when wins
        ({"state": "PENDING", "status": "succeeded"}, "COMPENSATED"),  # success_when is false
    ],
)
def test_success_when_and_failure_when_rules_decide_from_the_body(service, body, final):
    rules = {
        "success_when": {"==": [{"var": "state"}, "PAID"]},
        "failure_when": {"in": [{"var": "state"}, ["REJECTED", "EXPIRED"]]},
    }
    callback = Callback(body, delay_s=0.2)
    execution = drive(begin(service, Reply(202, callback=callback), callback=rules))
    assert execution.status == final
    assert [status for status, _ in service.callback_results] == [202]
    assert len(service.calls("POST", "/ship")) == (1 if final == "SUCCEEDED" else 0)


def test_body_without_status_counts_as_succeeded_and_is_stored_whole(service):
    body = {"ref": "abc", "amount": 10, "lines": [{"sku": "x", "qty": 2}]}
    ship_body = {"paid": "{{nodes.pix.callback.body}}", "ref": "{{nodes.pix.callback.body.ref}}"}
    execution = drive(begin(service, Reply(202, callback=Callback(body, delay_s=0.2)), ship_body=ship_body))
    assert execution.status == "SUCCEEDED"
    assert service.calls("POST", "/ship")[0].body == {"paid": body, "ref": "abc"}
    assert execution.steps.get(node_id="pix").detail["callback"] == body


def test_heartbeat_extends_the_deadline_past_the_original_timeout(service):
    # timeout_s leaves the heartbeat seconds to land in time on a loaded machine; heartbeat_s puts
    # the new deadline far past the original one.
    execution = waiting(begin(service, Reply(202), timeout_s=5, heartbeat_s=600))
    token = token_of(service, execution)
    original_deadline = execution.due_at

    sent = timezone.now()
    answer = post_callback(token, {"status": "running"})
    answered = timezone.now()
    assert answer.status_code == 202
    execution.refresh_from_db()
    assert sent + timedelta(seconds=600) <= execution.due_at <= answered + timedelta(seconds=600)

    wait_until(lambda: timezone.now() > original_deadline, timeout=30, message="the original deadline passing")
    advance_execution(execution.pk)  # a worker looking now finds nothing due: the node keeps waiting
    execution.refresh_from_db()
    assert execution.status == "WAITING"
    assert history(execution)[-1] == ("pix", "forward", 1, "waiting")

    assert post_callback(token, {"status": "succeeded"}).status_code == 202
    execution = drive(execution)
    assert execution.status == "SUCCEEDED"
    assert len(service.calls("POST", "/ship")) == 1


def test_without_a_heartbeat_the_same_node_times_out(service):
    execution = waiting(begin(service, Reply(202), timeout_s=1, heartbeat_s=4))
    execution = drive(execution, timeout=5)
    assert execution.status == "COMPENSATED"


# --- Refusals ---------------------------------------------------------------------------------


def _tamper(token: str) -> str:
    payload, rest = token.split(":", 1)
    middle = len(payload) // 2
    swapped = "A" if payload[middle] != "A" else "B"
    return f"{payload[:middle]}{swapped}{payload[middle + 1 :]}:{rest}"


@pytest.mark.parametrize("kind", ["forged", "tampered", "garbage"])
def test_bad_tokens_are_refused_with_403_and_change_nothing(service, settings, kind):
    execution = waiting(begin(service, Reply(202)))
    real = token_of(service, execution)
    if kind == "forged":
        keys = settings.TRAMA_CALLBACK_KEYS
        settings.TRAMA_CALLBACK_KEYS = ["some-other-server-key"]
        token = mint_callback_token(execution.pk, "pix", 1, datetime.now(tz=UTC) + timedelta(minutes=5))
        settings.TRAMA_CALLBACK_KEYS = keys
    elif kind == "tampered":
        token = _tamper(real)
    else:
        token = "not-a-token"
    assert token != real
    before = snapshot(execution)
    answer = post_callback(token, {"status": "succeeded"})
    assert answer.status_code == 403
    assert answer.json()["detail"]
    assert snapshot(execution) == before
    # The genuine token still works afterwards.
    assert post_callback(real, {"status": "succeeded"}).status_code == 202


def test_expired_token_is_a_410_and_the_timeout_still_applies(service, settings):
    settings.TRAMA_CALLBACK_GRACE_SECONDS = 0  # tokens expire at the node's deadline
    execution = waiting(begin(service, Reply(202), timeout_s=1))
    real = token_of(service, execution)
    minted = mint_callback_token(execution.pk, "pix", 1, datetime.now(tz=UTC) - timedelta(minutes=1))
    wait_until(lambda: timezone.now() > execution.due_at, message="the node's deadline passing")  # no worker looked
    before = snapshot(execution)
    assert before[0] == "WAITING"
    for token in (real, minted):
        answer = post_callback(token, {"status": "succeeded"})
        assert answer.status_code == 410, answer.text
    assert snapshot(execution) == before
    execution = drive(execution)
    assert execution.status == "COMPENSATED"
    assert execution.steps.get(node_id="pix", phase="forward").status == "timed_out"
    assert len(service.calls("POST", "/ship")) == 0


def test_validly_signed_token_for_an_unknown_execution_is_a_404():
    token = mint_callback_token(str(uuid.uuid4()), "pix", 1, datetime.now(tz=UTC) + timedelta(minutes=5))
    answer = post_callback(token, {"status": "succeeded"})
    assert answer.status_code == 404
    assert answer.json()["detail"]


@pytest.mark.parametrize(
    ("data", "content_type"),
    [("{not json", "application/json"), ("[1, 2]", "application/json"), ('"done"', "application/json")],
    ids=["not-json", "list", "string"],
)
def test_malformed_callback_body_is_a_400_and_the_node_keeps_waiting(service, data, content_type):
    execution = waiting(begin(service, Reply(202)))
    token = token_of(service, execution)
    before = snapshot(execution)
    answer = requests.post(callback_url(token), data=data, headers={"Content-Type": content_type}, timeout=10)
    assert answer.status_code == 400
    assert answer.json()["detail"]
    assert snapshot(execution) == before
    assert post_callback(token, {"status": "succeeded"}).status_code == 202


@pytest.mark.parametrize(
    ("status", "shown"),
    [("FAILED", '"FAILED"'), ("succeded", '"succeded"'), ("", '""'), (None, "null"), (1, "1")],
    ids=["upper-case", "typo", "empty", "null", "number"],
)
def test_an_unknown_callback_status_is_a_400_naming_status_and_the_node_keeps_waiting(service, status, shown):
    execution = waiting(begin(service, Reply(202)))
    token = token_of(service, execution)
    before = snapshot(execution)
    answer = post_callback(token, {"status": status, "output": {"paid": True}})
    assert answer.status_code == 400
    message = f'status must be "succeeded", "failed" or "running" (or left out), got {shown}'
    assert answer.json() == {"detail": message, "errors": [{"path": "status", "message": message}]}
    assert snapshot(execution) == before
    # The service can still deliver the callback correctly.
    assert post_callback(token, {"status": "failed", "error": "declined"}).status_code == 202
    execution = drive(execution)
    assert execution.status == "COMPENSATED"
    assert execution.error["message"] == "callback reported failure: declined"


def test_timeout_without_callback_compensates_and_a_late_callback_changes_nothing(service):
    execution = waiting(begin(service, Reply(202), timeout_s=1))
    token = token_of(service, execution)
    execution = drive(execution, timeout=5)
    assert execution.status == "COMPENSATED"
    assert history(execution) == [
        ("reserve", "forward", 1, "succeeded"),
        ("route", "forward", 1, "succeeded"),
        ("pix", "forward", 1, "timed_out"),
        # The service accepted the pix request, so it may have acted: in doubt, it is undone too.
        ("pix", "compensation", 1, "succeeded"),
        ("reserve", "compensation", 1, "succeeded"),
    ]
    assert execution.error["failure"] == "timeout"
    before = snapshot(execution)
    answer = post_callback(token, {"status": "succeeded"})
    assert answer.status_code in (409, 410)  # too late either way (see the strict test below)
    assert snapshot(execution) == before
    assert len(service.calls("POST", "/ship")) == 0


def test_late_callback_after_a_timeout_answers_409(service):
    execution = waiting(begin(service, Reply(202), timeout_s=1))
    token = token_of(service, execution)
    execution = drive(execution, timeout=5)
    assert execution.status == "COMPENSATED"
    assert post_callback(token, {"status": "succeeded"}).status_code == 409


def test_callback_after_a_cancel_is_a_409(service, api):
    execution = waiting(begin(service, Reply(202)))
    token = token_of(service, execution)
    assert (
        api.post(f"/api/v1/executions/{execution.pk}/cancel/", {"compensate": False}, format="json").status_code == 202
    )
    before = snapshot(execution)
    assert before[0] == "CANCELLED"
    assert post_callback(token, {"status": "succeeded"}).status_code == 409
    assert snapshot(execution) == before


def race(token: str, cancel_url: str, api_token: str, callback_delay_s: float) -> dict:
    """POST the callback and the cancel at the same moment from two threads; their answer codes.

    ``callback_delay_s`` staggers the callback a little so both orders happen over the runs.
    """
    barrier = threading.Barrier(2)
    answers = {}

    def callback():
        barrier.wait()
        time.sleep(callback_delay_s)
        answers["callback"] = post_callback(token, {"status": "succeeded"}).status_code

    def cancel():
        barrier.wait()
        headers = {"Authorization": f"Bearer {api_token}"}
        answers["cancel"] = requests.post(cancel_url, json={}, headers=headers, timeout=10).status_code

    threads = [threading.Thread(target=callback), threading.Thread(target=cancel)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    return answers


def test_callback_racing_a_cancel_ends_in_exactly_one_consistent_outcome(service, live_server):
    _, raw = ApiToken.mint("race")
    definition = store_definition(checkout(service.url))
    service.default("POST", "/pix", Reply(202))
    outcomes = []
    for run in range(10):
        service.reset()
        service.default("POST", "/pix", Reply(202))
        execution, _ = start_execution(definition, PIX | {"order": f"o-{run}"})
        execution = waiting(execution)
        token = token_of(service, execution)
        cancel_url = f"{live_server.url}/api/v1/executions/{execution.pk}/cancel/"
        answers = race(token, cancel_url, raw, callback_delay_s=(0.0, 0.004, 0.008, 0.015, 0.04)[run % 5])
        execution = drive(execution)
        pix = execution.steps.get(node_id="pix", phase="forward")
        refunds = len(service.calls("POST", "/refund"))

        assert answers["cancel"] == 202, (run, answers)
        assert execution.status == "CANCELLED", (run, answers)
        assert len(service.calls("POST", "/ship")) == 0
        assert len(service.calls("DELETE", "/reserve")) == 1
        if answers["callback"] == 202:  # the callback won: pix succeeded, so it is undone too
            assert pix.status == "succeeded" and pix.detail["callback"] == {"status": "succeeded"}, run
            assert refunds == 1, run
        else:  # the cancel won: the wait was closed as cancelled and the callback refused
            assert answers["callback"] == 409, (run, answers)
            assert pix.status == "cancelled" and "callback" not in (pix.detail or {}), run
            assert refunds == 1, run  # the service accepted the request: in doubt, it is undone too
        outcomes.append(answers["callback"])
    assert set(outcomes) <= {202, 409}


def test_key_rotation_keeps_old_tokens_valid_until_the_old_key_is_dropped(service, settings):
    settings.TRAMA_CALLBACK_KEYS = ["old-callback-key-0123456789"]
    service.default("POST", "/pix", Reply(202))
    definition = store_definition(checkout(service.url))
    first = waiting(start_execution(definition, PIX)[0])
    second = waiting(start_execution(definition, PIX)[0])

    settings.TRAMA_CALLBACK_KEYS = ["new-callback-key-9876543210", "old-callback-key-0123456789"]
    assert post_callback(token_of(service, first), {"status": "succeeded"}).status_code == 202
    assert drive(first).status == "SUCCEEDED"

    settings.TRAMA_CALLBACK_KEYS = ["new-callback-key-9876543210"]
    before = snapshot(second)
    assert post_callback(token_of(service, second), {"status": "succeeded"}).status_code == 403
    assert snapshot(second) == before

    # Tokens minted now use the new key and verify.
    third = waiting(start_execution(definition, PIX)[0])
    assert post_callback(token_of(service, third), {"status": "succeeded"}).status_code == 202
    assert drive(third).status == "SUCCEEDED"
