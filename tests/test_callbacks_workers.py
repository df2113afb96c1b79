"""Async callbacks under real worker processes (2 qcluster + 1 trama_timers) and a live callback receiver."""

from collections import Counter

import pytest

from definitions.services import store_definition
from executions.models import Execution
from executions.services import start_execution
from tests.support import Callback, Reply, wait_until

pytestmark = [pytest.mark.workers, pytest.mark.django_db(transaction=True)]


def pay_then_ship(base: str) -> dict:
    return {
        "name": "pay-then-ship",
        "kind": "graph",
        "start": "pay",
        "nodes": {
            "pay": {
                "type": "async_task",
                "request": {"method": "POST", "url": f"{base}/pay", "body": {"n": "{{payload.n}}"}},
                "timeout_s": 60,
                "next": "ship",
            },
            "ship": {
                "type": "task",
                "request": {
                    "method": "POST",
                    "url": f"{base}/ship",
                    "body": {"execution": "{{execution.id}}", "paid": "{{nodes.pay.callback.body.output.paid}}"},
                },
            },
        },
    }


def test_twenty_executions_called_back_inside_the_handler_all_succeed_once(service, worker_pool, live_server, settings):
    settings.TRAMA_PUBLIC_URL = live_server.url
    settings.TRAMA_EGRESS_ALLOW = ["127.0.0.1"]
    worker_pool.env["TRAMA_PUBLIC_URL"] = live_server.url
    worker_pool.start_worker()
    worker_pool.start_worker()
    worker_pool.start_timers()
    callback = Callback({"status": "succeeded", "output": {"paid": True}}, before_reply=True)
    service.default("POST", "/pay", Reply(202, {"accepted": True}, callback=callback))
    definition = store_definition(pay_then_ship(service.url))

    ids = [start_execution(definition, {"n": n})[0].pk for n in range(20)]

    def finished():
        rows = Counter(Execution.objects.filter(pk__in=ids).values_list("status", flat=True))
        return (
            rows
            if sum(n for status, n in rows.items() if status in {"SUCCEEDED", "COMPENSATED", "FAILED"}) == 20
            else None
        )

    final = wait_until(finished, timeout=45, interval=0.1, message="all 20 executions final")
    assert final == Counter({"SUCCEEDED": 20})

    service.join_callbacks()
    assert [status for status, _ in service.callback_results] == [202] * 20
    pays = Counter(r.header("Idempotency-Key") for r in service.calls("POST", "/pay"))
    assert pays == Counter({f"{pk}:pay:1": 1 for pk in ids})  # each sent once: the early callback lost nothing
    ships = Counter(r.body["execution"] for r in service.calls("POST", "/ship"))
    assert ships == Counter({str(pk): 1 for pk in ids})  # the next node ran exactly once per execution
    assert all(r.body["paid"] is True for r in service.calls("POST", "/ship"))
    for execution in Execution.objects.filter(pk__in=ids):
        steps = [(s.node_id, s.attempt, s.status) for s in execution.steps.order_by("seq")]
        assert steps == [("pay", 1, "succeeded"), ("ship", 1, "succeeded")], execution.pk
        assert execution.lease_until is None and execution.due_at is None
