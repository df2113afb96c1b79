"""trama_stuck: what is overdue, leased past its lease, unclaimed or failed."""

import json

import pytest

from definitions.services import store_definition
from executions.models import Execution
from executions.services import start_execution
from tests.support import Reply
from tests.support.commands import ago, fails, run, saga
from tests.support.engine import drive


@pytest.mark.django_db(transaction=True)
def test_trama_stuck_lists_overdue_waits_expired_leases_unclaimed_and_failed(service, egress):
    definition = store_definition(saga(service.url))
    waiting, _ = start_execution(definition, {"n": 1})
    Execution.objects.filter(pk=waiting.pk).update(status="WAITING", due_at=ago(minutes=10))
    leased, _ = start_execution(definition, {"n": 2})
    Execution.objects.filter(pk=leased.pk).update(status="RUNNING", lease_until=ago(minutes=5), due_at=ago(minutes=5))
    unclaimed, _ = start_execution(definition, {"n": 3})
    Execution.objects.filter(pk=unclaimed.pk).update(due_at=ago(minutes=3))
    service.default("POST", "/charge", Reply(400))
    failed_source = saga(service.url, name="fails")
    failed_source["steps"][1]["on_failure"] = "fail"
    failed = drive(start_execution(store_definition(failed_source), {})[0])
    healthy, _ = start_execution(definition, {"n": 4})  # due now: not late by the margin
    fine = drive(start_execution(store_definition(saga(service.url, name="fine")), {})[0])
    assert (failed.status, fine.status) == ("FAILED", "COMPENSATED")

    rows = json.loads(run("trama_stuck", "--json"))
    reasons = {row["id"]: row["reason"] for row in rows}
    assert reasons == {
        str(waiting.pk): "overdue",
        str(leased.pk): "lease_expired",
        str(unclaimed.pk): "not_picked_up",
        str(failed.pk): "failed",
    }
    assert str(healthy.pk) not in reasons
    table = run("trama_stuck")
    assert "REASON" in table and "lease_expired" in table and "4 stuck execution(s)" in table
    assert str(failed.pk) not in run("trama_stuck", "--no-failed")
    assert str(waiting.pk) not in run("trama_stuck", "--margin", "1h")


@pytest.mark.django_db
def test_trama_stuck_says_nothing_stuck_and_rejects_a_bad_margin():
    assert "nothing stuck" in run("trama_stuck")
    assert "--margin must be a number and a unit" in str(fails("trama_stuck", "--margin", "soon"))
