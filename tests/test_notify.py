"""``notify``: the succeeded / failed request, sent once when an execution ends that way."""

import pytest

from definitions.services import store_definition
from executions.services import start_execution
from tests.support.engine import drive, history
from tests.support.service import Reply

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _allow_loopback(settings):
    settings.TRAMA_EGRESS_ALLOW = ["127.0.0.1"]


def notifying_saga(url: str) -> dict:
    return {
        "name": "notified",
        "kind": "saga",
        "steps": [
            {"id": "reserve", "request": {"method": "POST", "url": f"{url}/reserve"},
             "compensation": {"method": "DELETE", "url": f"{url}/reserve"}},
            {"id": "charge", "request": {"method": "POST", "url": f"{url}/charge", "body": {"n": "{{payload.n}}"}}},
        ],
        "notify": {
            "succeeded": {"method": "POST", "url": f"{url}/hooks/ok", "body": {"id": "{{execution.id}}"}},
            "failed": {"method": "POST", "url": f"{url}/hooks/failed", "retry": {"max_attempts": 2, "backoff_s": 0}},
        },
    }  # fmt: skip


def test_succeeded_execution_notifies_once_with_rendered_body(service):
    execution, _ = start_execution(store_definition(notifying_saga(service.url)), {"n": 1})
    execution = drive(execution)
    assert execution.status == "SUCCEEDED"
    hooks = service.calls("POST", "/hooks/ok")
    assert [h.body for h in hooks] == [{"id": str(execution.pk)}]
    assert hooks[0].header("Idempotency-Key") == f"{execution.pk}:notify.succeeded:1"
    assert service.calls("POST", "/hooks/failed") == []
    assert history(execution)[-1] == ("notify.succeeded", "notify", 1, "succeeded")
    assert execution.output == {"ok": True, "path": "/charge", "echo": {"n": 1}}


def test_compensated_execution_notifies_failed_and_a_failing_hook_changes_nothing(service):
    service.script("POST", "/charge", Reply(400))
    service.default("POST", "/hooks/failed", Reply(503))
    execution, _ = start_execution(store_definition(notifying_saga(service.url)), {"n": 2})
    execution = drive(execution)
    assert execution.status == "COMPENSATED"
    assert execution.error["node"] == "charge"
    assert len(service.calls("POST", "/hooks/failed")) == 2  # its own retry policy: 2 attempts
    assert history(execution)[-2:] == [
        ("notify.failed", "notify", 1, "failed"),
        ("notify.failed", "notify", 2, "failed"),
    ]
