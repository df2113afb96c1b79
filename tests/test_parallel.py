"""The parallel node: branches as executions of their own, joined when all succeed."""

import sys

import pytest
from django.utils import timezone

from definitions.services import store_definition
from executions.models import FINAL_STATUSES, Execution
from executions.services import cancel_execution, start_execution, wake_execution
from graph_editor.operations import available
from tests.support.engine import drive, history
from tests.support.service import Callback, Reply
from tests.support.waiting import wait_until

SETUP = "import django; django.setup()\n"

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _allow_loopback(settings, live_server):
    settings.TRAMA_EGRESS_ALLOW = ["127.0.0.1"]
    settings.TRAMA_PUBLIC_URL = live_server.url


def post(url: str, path: str, **extra) -> dict:
    return {"method": "POST", "url": f"{url}{path}"} | extra


def undo(url: str, path: str) -> dict:
    return {"method": "DELETE", "url": f"{url}{path}"}


def fork_graph(url: str) -> dict:
    """reserve -> fork(email | pay(async) | wait -> audit) -> ship, every task undoable."""
    return {
        "name": "fork",
        "kind": "graph",
        "start": "reserve",
        "nodes": {
            "reserve": {"type": "task", "request": post(url, "/reserve"), "compensation": undo(url, "/reserve"),
                        "next": "fork"},
            "fork": {"type": "parallel", "branches": ["email", "pay", "wait"], "next": "ship"},
            "email": {"type": "task", "request": post(url, "/email"), "compensation": undo(url, "/email")},
            "pay": {"type": "async_task", "request": post(url, "/pay"), "compensation": undo(url, "/pay"),
                    "timeout_s": 30},
            "wait": {"type": "sleep", "duration_s": 0.3, "next": "audit"},
            "audit": {"type": "task", "compensation": undo(url, "/audit"),
                      "request": post(url, "/audit", body={"reserved": "{{nodes.reserve.response.status}}"})},
            "ship": {"type": "task", "request": post(url, "/ship", body={
                "email": "{{nodes.email.response.status}}", "paid": "{{nodes.pay.callback.body.ok}}"})},
        },
    }  # fmt: skip


def drive_all(execution: Execution, timeout: float = 20.0) -> Execution:
    """Drive the parent and its branches in-process until the parent is final."""
    import time

    from django.utils import timezone

    from executions.models import FINAL_STATUSES
    from executions.services import advance_execution

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        execution.refresh_from_db()
        if execution.status in FINAL_STATUSES:
            return execution
        due = Execution.objects.filter(due_at__lte=timezone.now()).filter(pk=execution.pk) | Execution.objects.filter(
            parent=execution, due_at__lte=timezone.now()
        )
        for pk in due.values_list("pk", flat=True):
            advance_execution(pk)
        time.sleep(0.02)
    raise AssertionError(f"stuck in {execution.status}: {execution.state}")


def test_branches_run_as_executions_and_join_before_next(service):
    service.script("POST", "/pay", Reply(202, callback=Callback({"ok": True}, delay_s=0.1)))
    execution, _ = start_execution(store_definition(fork_graph(service.url)), {})
    execution = drive_all(execution)
    assert execution.status == "SUCCEEDED"
    branches = {b.branch: b for b in execution.branches.all()}
    assert set(branches) == {"email", "pay", "wait"}
    assert all(b.status == "SUCCEEDED" for b in branches.values())
    assert history(branches["wait"]) == [("wait", "forward", 1, "succeeded"), ("audit", "forward", 1, "succeeded")]
    # A branch sees what ran before the fork; after the join, templates read every branch's nodes.
    assert service.calls("POST", "/audit")[0].body == {"reserved": 200}
    assert service.calls("POST", "/ship")[0].body == {"email": 200, "paid": True}
    assert [h[0] for h in history(execution)] == ["reserve", "fork", "ship"]
    assert service.calls("POST", "/ship")[0].at > max(c.at for c in service.calls("POST", "/audit"))


def test_a_failing_branch_cancels_the_others_and_everything_is_compensated(service):
    service.script("POST", "/email", Reply(400))
    service.script("POST", "/pay", Reply(202))  # never calls back: cancelled while waiting
    execution, _ = start_execution(store_definition(fork_graph(service.url)), {})
    execution = drive_all(execution)
    assert execution.status == "COMPENSATED"
    assert execution.error["branch"] == "email"
    branches = {b.branch: b.status for b in execution.branches.all()}
    assert branches["email"] == "COMPENSATED"
    assert branches["pay"] == "CANCELLED" and branches["wait"] == "CANCELLED"
    assert len(service.calls("DELETE", "/pay")) == 1  # accepted async request undone
    assert len(service.calls("DELETE", "/reserve")) == 1
    assert service.calls("POST", "/ship") == []
    # The fork's own compensation (reserve) runs after every branch has finished compensating.
    last_branch_undo = max(c.at for c in service.calls("DELETE", "/pay"))
    assert service.calls("DELETE", "/reserve")[0].at > last_branch_undo


def test_cancelling_the_parent_cancels_running_branches(service):
    service.script("POST", "/pay", Reply(202))
    execution, _ = start_execution(store_definition(fork_graph(service.url)), {})
    drive(execution, until={"WAITING"})
    for branch in execution.branches.all():
        drive(branch, until={"WAITING", "SLEEPING", "SUCCEEDED"})
    cancel_execution(execution.pk, compensate=True)
    execution = drive_all(execution)
    assert execution.status == "CANCELLED"
    wait_until(lambda: all(b.status in ("CANCELLED", "SUCCEEDED") for b in execution.branches.all()))
    assert len(service.calls("DELETE", "/reserve")) == 1
    assert len(service.calls("DELETE", "/email")) == 1  # the branch that had already succeeded is undone too


def _fork_with(branch_nodes: dict, branches: list[str]) -> dict:
    url = "http://svc"
    nodes = {
        "a": {"type": "task", "request": post(url, "/a"), "next": "fork"},
        "fork": {"type": "parallel", "branches": branches, "next": "z"},
        "z": {"type": "task", "request": post(url, "/z")},
    }
    return {"name": "bad-fork", "kind": "graph", "start": "a", "nodes": nodes | branch_nodes}


@pytest.mark.parametrize(
    ("branch_nodes", "branches", "message"),
    [
        ({"b": {"type": "task", "request": post("http://svc", "/b"), "next": "z"}}, ["b"], "escapes its fork"),
        ({"b": {"type": "task", "request": post("http://svc", "/b"), "next": "a"}}, ["b"], "loops back"),
        (
            {
                "b": {"type": "task", "request": post("http://svc", "/b"), "next": "c"},
                "c": {"type": "task", "request": post("http://svc", "/c")},
                "d": {"type": "task", "request": post("http://svc", "/d"), "next": "c"},
            },
            ["b", "d"],
            "shares node 'c'",
        ),
    ],
)
def test_validation_rejects_a_branch_that_leaves_its_fork(api, branch_nodes, branches, message):
    response = api.post("/api/v1/definitions/validate/", _fork_with(branch_nodes, branches), format="json")
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert any(e["path"].startswith("nodes.fork.branches[") and message in e["message"] for e in errors), errors


def test_steps_api_shows_branches_side_by_side_and_the_list_hides_them(api, service):
    service.script("POST", "/pay", Reply(202, callback=Callback({"ok": True}, delay_s=0.1)))
    execution, _ = start_execution(store_definition(fork_graph(service.url)), {})
    execution = drive_all(execution)
    steps = api.get(f"/api/v1/executions/{execution.pk}/steps/").json()
    by_branch = {}
    for step in steps:
        by_branch.setdefault(step["branch"], []).append(step["node_id"])
    assert by_branch == {"": ["reserve", "fork", "ship"], "email": ["email"], "pay": ["pay"], "wait": ["wait", "audit"]}
    listed = api.get("/api/v1/executions/").json()["results"]
    assert [e["id"] for e in listed] == [str(execution.pk)]
    assert len(api.get("/api/v1/executions/?include_branches=true").json()["results"]) == 4


# --- Compensating branches, under real worker processes ----------------------------------------------
# The branch that must fail waits in a long sleep until the test wakes it, once the other branch has
# succeeded: the order of the calls then follows from the graph, not from timing.


def undoable(url: str, path: str, **extra) -> dict:
    return {"type": "task", "request": post(url, path), "compensation": undo(url, path)} | extra


def two_branch_graph(url: str, nap_then: dict, after_join: str | None = None) -> dict:
    """reserve -> fork(email -> sms | nap (long sleep) -> ``nap_then``...) -> ``after_join``."""
    nodes = {
        "reserve": undoable(url, "/reserve", next="fork"),
        "fork": {"type": "parallel", "branches": ["email", "nap"]} | ({"next": after_join} if after_join else {}),
        "email": undoable(url, "/email", next="sms"),
        "sms": undoable(url, "/sms"),
        "nap": {"type": "sleep", "duration_s": 3600, "next": next(iter(nap_then))},
    }
    return {"name": "two-branches", "kind": "graph", "start": "reserve", "nodes": nodes | nap_then}


def run_with_workers(worker_pool, spec: dict) -> Execution:
    """Start ``spec`` under a real worker and timer process; wake the napping branch once email's has succeeded."""
    worker_pool.start_worker()
    worker_pool.start_timers()
    execution, _ = start_execution(store_definition(spec), {})
    wait_until(
        lambda: dict(execution.branches.values_list("branch", "status")) == {"email": "SUCCEEDED", "nap": "SLEEPING"},
        timeout=30,
        message="email's branch SUCCEEDED and nap's SLEEPING",
    )
    wake_execution(execution.branches.get(branch="nap").pk)
    wait_until(lambda: Execution.objects.get(pk=execution.pk).status in FINAL_STATUSES, timeout=30)
    execution.refresh_from_db()
    return execution


def calls(service) -> list[str]:
    return [f"{r.method} {r.path}" for r in service.requests]


@pytest.mark.workers
def test_a_failing_branch_compensates_every_step_of_the_branches_that_succeeded(service, worker_pool):
    service.script("POST", "/pay", Reply(400))
    spec = two_branch_graph(service.url, {"pay": undoable(service.url, "/pay")})
    execution = run_with_workers(worker_pool, spec)
    assert execution.status == "COMPENSATED"
    assert (execution.error["branch"], execution.error["message"]) == ("nap", "branch 'nap' ended COMPENSATED")
    # Within a branch in reverse order, then what ran before the fork; pay failed, so nothing undoes it.
    assert calls(service) == [
        "POST /reserve", "POST /email", "POST /sms", "POST /pay",
        "DELETE /sms", "DELETE /email", "DELETE /reserve",
    ]  # fmt: skip
    assert history(execution) == [
        ("reserve", "forward", 1, "succeeded"),
        ("fork", "forward", 1, "failed"),
        ("sms", "compensation", 1, "succeeded"),
        ("email", "compensation", 1, "succeeded"),
        ("reserve", "compensation", 1, "succeeded"),
    ]
    assert dict(execution.branches.values_list("branch", "status")) == {"email": "SUCCEEDED", "nap": "COMPENSATED"}


@pytest.mark.workers
def test_a_branch_whose_compensation_failed_for_good_makes_the_parent_failed(api, service, worker_pool):
    service.script("POST", "/pay", Reply(400))
    service.script("DELETE", "/card", Reply(400))
    nap_then = {"card": undoable(service.url, "/card", next="pay"), "pay": undoable(service.url, "/pay")}
    execution = run_with_workers(worker_pool, two_branch_graph(service.url, nap_then))
    assert execution.status == "FAILED"
    assert (execution.error["branch"], execution.error["message"]) == ("nap", "branch 'nap' ended FAILED")
    # The parent still undoes everything it can: the other branch's steps and the steps before the fork.
    assert calls(service) == [
        "POST /reserve", "POST /email", "POST /sms", "POST /card", "POST /pay",
        "DELETE /card", "DELETE /sms", "DELETE /email", "DELETE /reserve",
    ]  # fmt: skip
    assert dict(execution.branches.values_list("branch", "status")) == {"email": "SUCCEEDED", "nap": "FAILED"}
    nap = execution.branches.get(branch="nap")
    assert (nap.error["phase"], nap.error["node"]) == ("compensation", "card")
    # Everything else is undone: the parent's retry has nothing left to do, the branch's own retry has.
    refused = api.post(f"/api/v1/executions/{execution.pk}/retry/", {}, format="json")
    assert refused.status_code == 409
    assert "branch 'nap' ended FAILED and everything else is already compensated" in refused.json()["detail"]
    assert "retry" not in available(execution, [])["ops"]
    assert {"retry", "retry_skip"} <= set(available(nap, [])["ops"])


@pytest.mark.workers
def test_a_failure_after_the_join_compensates_the_branches_steps(service, worker_pool):
    service.script("POST", "/ship", Reply(400))
    spec = two_branch_graph(service.url, {"audit": undoable(service.url, "/audit")}, after_join="ship")
    spec["nodes"]["ship"] = undoable(service.url, "/ship")
    execution = run_with_workers(worker_pool, spec)
    assert execution.status == "COMPENSATED"
    assert execution.error["node"] == "ship"
    assert calls(service) == [
        "POST /reserve", "POST /email", "POST /sms", "POST /audit", "POST /ship",
        "DELETE /audit", "DELETE /sms", "DELETE /email", "DELETE /reserve",
    ]  # fmt: skip
    assert [(node, phase, status) for node, phase, _, status in history(execution)] == [
        ("reserve", "forward", "succeeded"),
        ("fork", "forward", "succeeded"),
        ("ship", "forward", "failed"),
        ("audit", "compensation", "succeeded"),
        ("sms", "compensation", "succeeded"),
        ("email", "compensation", "succeeded"),
        ("reserve", "compensation", "succeeded"),
    ]


# --- Retry of a parent FAILED because a branch stopped at a failed node (on_failure "fail") -----------


def stopping_branch_graph(url: str) -> dict:
    """reserve -> fork(email -> sms | pay, which stops the branch when it fails) -> ship."""
    nodes = {
        "reserve": undoable(url, "/reserve", next="fork"),
        "fork": {"type": "parallel", "branches": ["email", "pay"], "next": "ship"},
        "email": undoable(url, "/email", next="sms"),
        "sms": undoable(url, "/sms"),
        "pay": undoable(url, "/pay", on_failure="fail"),
        "ship": {"type": "task", "request": post(url, "/ship", body={"paid": "{{nodes.pay.response.status}}"})},
    }
    return {"name": "stopping-branch", "kind": "graph", "start": "reserve", "nodes": nodes}


def failed_at_the_fork(service, worker_pool) -> Execution:
    """Run until the parent is FAILED: pay answered 500 (no retries left), email's branch succeeded."""
    service.script("POST", "/pay", Reply(500, {"error": "card service down"}))
    worker_pool.start_worker()
    worker_pool.start_timers()
    execution, _ = start_execution(store_definition(stopping_branch_graph(service.url)), {})
    wait_until(lambda: Execution.objects.get(pk=execution.pk).status in FINAL_STATUSES, timeout=30)
    execution.refresh_from_db()
    assert execution.status == "FAILED", execution.state
    assert (execution.error["node"], execution.error["branch"]) == ("fork", "pay")
    assert dict(execution.branches.values_list("branch", "status")) == {"email": "SUCCEEDED", "pay": "FAILED"}
    assert not [call for call in calls(service) if call.startswith("DELETE")]  # nothing is undone: it waits
    return execution


def retried_to_the_end(api, execution: Execution, target: Execution) -> Execution:
    answer = api.post(f"/api/v1/executions/{target.pk}/retry/", {}, format="json")
    assert answer.status_code == 202, answer.json()
    wait_until(lambda: Execution.objects.get(pk=execution.pk).status in FINAL_STATUSES, timeout=30)
    execution.refresh_from_db()
    return execution


@pytest.mark.workers
def test_retrying_the_parent_reruns_the_failed_branch_from_its_failed_step_then_joins(api, service, worker_pool):
    execution = failed_at_the_fork(service, worker_pool)
    offered = available(execution, list(execution.branches.all()))
    assert ("retry" in offered["ops"], offered["failed_node"]) == (True, "fork (branch pay)")

    execution = retried_to_the_end(api, execution, execution)  # the service is back: the script is used up

    assert execution.status == "SUCCEEDED", execution.state
    assert dict(execution.branches.values_list("branch", "status")) == {"email": "SUCCEEDED", "pay": "SUCCEEDED"}
    # email's branch kept its result (not called again); pay ran again; ship read pay's new answer.
    assert sorted(calls(service)) == ["POST /email", "POST /pay", "POST /pay", "POST /reserve", "POST /ship",
                                      "POST /sms"]  # fmt: skip
    assert service.calls("POST", "/ship")[0].body == {"paid": 200}
    pay = execution.branches.get(branch="pay")
    assert [(node, attempt, status) for node, _, attempt, status in history(pay)] == [
        ("pay", 1, "failed"), ("pay", 2, "succeeded"),
    ]  # fmt: skip
    assert [(node, attempt, status) for node, _, attempt, status in history(execution)] == [
        ("reserve", 1, "succeeded"), ("fork", 1, "failed"), ("fork", 2, "succeeded"), ("ship", 1, "succeeded"),
    ]  # fmt: skip


# The retry of the parent, in a process that dies right after its commit: before the branch retries
# it registered to run then (transaction.on_commit hooks run in order; ours is first).
RETRY_THEN_DIE = """
import os, sys
from django.db import transaction
from executions.services import retry_execution
with transaction.atomic():
    transaction.on_commit(lambda: os._exit(0))
    retry_execution(sys.argv[1], by="ops")
"""


@pytest.mark.workers
def test_a_parent_retry_whose_process_dies_after_its_commit_still_retries_the_branch(service, worker_pool):
    execution = failed_at_the_fork(service, worker_pool)
    dying = worker_pool.spawn("retry-then-die", [sys.executable, "-c", SETUP + RETRY_THEN_DIE, str(execution.pk)])
    assert dying.wait(timeout=30) == 0
    execution.refresh_from_db()
    assert execution.status == "WAITING"  # the retry committed...
    assert execution.branches.get(branch="pay").status == "FAILED"  # ...and its branch retry never ran
    # The re-check is due in 30 s; bring it forward rather than wait: the timer loop hands it to a worker.
    Execution.objects.filter(pk=execution.pk).update(due_at=timezone.now())
    wait_until(lambda: Execution.objects.get(pk=execution.pk).status in FINAL_STATUSES, timeout=30)
    execution.refresh_from_db()
    assert execution.status == "SUCCEEDED", execution.state
    assert len(service.calls("POST", "/pay")) == 2
    assert service.calls("POST", "/ship")[0].body == {"paid": 200}


@pytest.mark.workers
def test_retrying_the_branch_first_then_the_parent_also_joins(api, service, worker_pool):
    execution = failed_at_the_fork(service, worker_pool)
    pay = execution.branches.get(branch="pay")

    assert retried_to_the_end(api, pay, pay).status == "SUCCEEDED"
    assert Execution.objects.get(pk=execution.pk).status == "FAILED"  # final: only its own retry moves it
    execution = retried_to_the_end(api, execution, execution)

    assert execution.status == "SUCCEEDED", execution.state
    assert len(service.calls("POST", "/pay")) == 2
    assert service.calls("POST", "/ship")[0].body == {"paid": 200}
