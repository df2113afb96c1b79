"""A sleep ``until`` from a template: rendered at run time, so checked at run time (a literal is checked when stored).

The real worker code (executions.services.advance_execution) runs in-process against a real service.
"""

from datetime import UTC, datetime

import pytest

from executions.services import start_execution
from tests.support.definitions import store
from tests.support.engine import drive, history
from tests.support.specs import req, task

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _allow_loopback(settings):
    settings.TRAMA_EGRESS_ALLOW = ["127.0.0.1"]


def napping(service_url: str):
    """reserve (undone by DELETE /reserve) -> nap until {{payload.wake_at}} -> ship."""
    nodes = {
        "reserve": task(req("POST", f"{service_url}/reserve"), next="nap",
                        compensation=req("DELETE", f"{service_url}/reserve")),
        "nap": {"type": "sleep", "duration_s": None, "until": "{{payload.wake_at}}", "next": "ship"},
        "ship": task(req("POST", f"{service_url}/ship")),
    }  # fmt: skip
    return store(nodes, "reserve", name="napping")


def test_a_templated_until_sleeps_until_that_instant_in_utc(service):
    execution, _ = start_execution(napping(service.url), {"wake_at": "2100-01-01T00:00:00+02:00"})
    execution = drive(execution, until={"SLEEPING"})
    assert execution.due_at == datetime(2099, 12, 31, 22, 0, tzinfo=UTC)
    assert execution.steps.get(node_id="nap").detail == {"until": "2099-12-31T22:00:00+00:00"}


@pytest.mark.parametrize(
    ("wake_at", "reason"),
    [
        ("9999-12-31T23:59:59-23:59", "is out of range: it must fall within the years 1 to 9999 in UTC"),
        ("0001-01-01T00:00:00+23:59", "is out of range: it must fall within the years 1 to 9999 in UTC"),
        ("2100-01-01T00:00:00", "must include a timezone (e.g. 'Z' or '+00:00')"),
        ("soon", "must be an ISO-8601 date-time"),
    ],
)
def test_a_templated_until_that_is_no_utc_instant_fails_the_node_with_the_reason(service, wake_at, reason):
    execution, _ = start_execution(napping(service.url), {"wake_at": wake_at})
    execution = drive(execution)
    assert execution.status == "COMPENSATED"
    message = f"until {reason}, got {wake_at!r}"
    assert execution.error == {"node": "nap", "failure": "template", "message": message}
    assert history(execution) == [
        ("reserve", "forward", 1, "succeeded"),
        ("nap", "forward", 1, "failed"),
        ("reserve", "compensation", 1, "succeeded"),
    ]
    assert execution.steps.get(node_id="nap").error == {"message": message}
    assert [(r.method, r.path) for r in service.requests] == [("POST", "/reserve"), ("DELETE", "/reserve")]
    assert execution.due_at is None and execution.lease_until is None  # nothing left for a worker to re-claim
