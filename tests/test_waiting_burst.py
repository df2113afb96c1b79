"""Load: executions parked in WAITING cost nothing while they wait, and resume once each in a burst.

Real processes: 2 qcluster + 1 trama_timers, the live server as the callback receiver. 200
executions of `pix` (async_task, timeout 1 h) -> `ship` are parked in WAITING by the workers;
for a quiet period nothing may touch them (no step row written or changed, no execution row
changed: fence, updated_at, nudged_at, due_at all the same, and no request reaches the service);
then every callback is sent at once from a pool of senders, and every execution must end
SUCCEEDED with exactly one /ship call. The bench with 10,000 is bench/waiting_burst.py.
"""

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from threading import local

import pytest
import requests

from definitions.services import store_definition
from executions.callbacks.services import receive_callback
from executions.models import Execution, ExecutionStatus, Step
from executions.services import advance_execution, enqueue_due_executions, start_execution
from tests.support import Reply, wait_until

pytestmark = [pytest.mark.django_db(transaction=True)]

PARKED = 200
QUIET_S = 4.0
SENDERS = 16


def pix_then_ship(base: str) -> dict:
    return {
        "name": "burst-pix-ship",
        "kind": "graph",
        "start": "pix",
        "nodes": {
            "pix": {
                "type": "async_task",
                "request": {"method": "POST", "url": f"{base}/pix", "body": {"n": "{{payload.n}}"}},
                "timeout_s": 3600,
                "next": "ship",
            },
            "ship": {
                "type": "task",
                "request": {"method": "POST", "url": f"{base}/ship", "body": {"execution": "{{execution.id}}"}},
            },
        },
    }


def _snapshot(ids) -> tuple[list, list]:
    """Everything a poller, a timer or a worker would change on these executions and their steps."""
    rows = list(
        Execution.objects.filter(pk__in=ids)
        .order_by("pk")
        .values_list("pk", "status", "fence", "updated_at", "nudged_at", "due_at", "lease_until", "pending_callback")
    )
    steps = list(
        Step.objects.filter(execution_id__in=ids)
        .order_by("pk")
        .values_list("pk", "execution_id", "seq", "status", "finished_at", "detail")
    )
    return rows, steps


@pytest.mark.workers
def test_parked_executions_are_left_alone_then_all_resume_once_in_a_callback_burst(
    service, worker_pool, live_server, settings
):
    settings.TRAMA_PUBLIC_URL = live_server.url
    settings.TRAMA_EGRESS_ALLOW = ["127.0.0.1"]
    worker_pool.env["TRAMA_PUBLIC_URL"] = live_server.url
    worker_pool.start_worker()
    worker_pool.start_worker()
    worker_pool.start_timers()
    service.default("POST", "/pix", Reply(202, {"accepted": True}))  # accepted; the callback comes much later
    definition = store_definition(pix_then_ship(service.url))

    ids = [start_execution(definition, {"n": n})[0].pk for n in range(PARKED)]

    def parked():
        # WAITING, the service's 202 recorded (acked), and no worker holding the row any more.
        rows = Execution.objects.filter(pk__in=ids, status=ExecutionStatus.WAITING, lease_until__isnull=True)
        return sum(1 for state in rows.values_list("state", flat=True) if state["wait"]["acked"]) == PARKED

    wait_until(parked, timeout=90, interval=0.2, message=f"all {PARKED} executions parked in WAITING")
    pix_calls = service.calls("POST", "/pix")
    assert Counter(r.header("Idempotency-Key") for r in pix_calls) == Counter({f"{pk}:pix:1": 1 for pk in ids})
    assert Step.objects.filter(execution_id__in=ids).count() == PARKED  # the one pix step each

    # Quiet: nothing is due for an hour, so nothing may read-modify-write these rows.
    requests_before = len(service.requests)
    before = _snapshot(ids)
    time.sleep(QUIET_S)
    after = _snapshot(ids)
    assert after[0] == before[0], "an execution row changed while it was parked"
    assert after[1] == before[1], "a step row was written or changed while nothing was due"
    assert len(service.requests) == requests_before, "a request left Trama while every execution was parked"

    # The burst: every callback at once.
    urls = {r.body["n"]: r.header("X-Trama-Callback-Url") for r in pix_calls}
    assert len(urls) == PARKED and all(urls.values())
    sessions = local()

    def send(url: str) -> int:
        if not hasattr(sessions, "s"):
            sessions.s = requests.Session()
        return sessions.s.post(url, json={"status": "succeeded", "output": {"paid": True}}, timeout=60).status_code

    with ThreadPoolExecutor(SENDERS) as pool:
        answers = Counter(pool.map(send, urls.values()))
    assert answers == Counter({202: PARKED})

    def finished():
        statuses = Counter(Execution.objects.filter(pk__in=ids).values_list("status", flat=True))
        return statuses if statuses[ExecutionStatus.SUCCEEDED] == PARKED else None

    wait_until(finished, timeout=90, interval=0.2, message=f"all {PARKED} executions SUCCEEDED after the burst")
    ships = Counter(r.body["execution"] for r in service.calls("POST", "/ship"))
    assert ships == Counter({str(pk): 1 for pk in ids})  # the next node ran exactly once per execution
    for execution in Execution.objects.filter(pk__in=ids).prefetch_related("steps"):
        steps = [(s.node_id, s.attempt, s.status) for s in sorted(execution.steps.all(), key=lambda s: s.seq)]
        assert steps == [("pix", 1, "succeeded"), ("ship", 1, "succeeded")], execution.pk
        assert execution.lease_until is None and execution.due_at is None and execution.pending_callback is None


# Each wake-up is enqueued once (3ef1ced): before it, a start or an applied callback enqueued the
# execution without marking it nudged, so the next timer pass enqueued it again, and a burst
# left the queue full of stale wake-ups (1,370 after 10,000 callbacks; see docs/reliability.md).


def test_a_fresh_start_is_not_enqueued_again_by_the_next_timer_pass(service):
    definition = store_definition(pix_then_ship(service.url))
    start_execution(definition, {"n": 0})  # committed, and its wake-up is in the queue
    assert enqueue_due_executions() == 0  # nobody claimed it yet, but it was woken a moment ago


def test_a_callback_applied_by_the_receiver_is_not_enqueued_again_by_the_next_timer_pass(service, settings):
    settings.TRAMA_EGRESS_ALLOW = ["127.0.0.1"]
    service.default("POST", "/pix", Reply(202, {"accepted": True}))
    execution = start_execution(store_definition(pix_then_ship(service.url)), {"n": 0})[0]
    advance_execution(execution.pk)  # in this process: parks it in WAITING, the 202 recorded
    assert Execution.objects.get(pk=execution.pk).status == ExecutionStatus.WAITING
    token = service.calls("POST", "/pix")[0].header("X-Trama-Callback-Token")

    assert receive_callback(token, {"status": "succeeded"}).status == 202  # applied and enqueued
    assert Execution.objects.get(pk=execution.pk).status == ExecutionStatus.RUNNING
    assert enqueue_due_executions() == 0
