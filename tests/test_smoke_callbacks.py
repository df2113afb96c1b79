import pytest

from executions.services import start_execution
from tests.engine_support import drive, req, store, task
from tests.support.service import Callback, Reply


def async_node(request, next=None, **extra):
    node = task(request, next=next) | {
        "type": "async_task",
        "timeout_s": 30.0,
        "heartbeat_s": None,
        "on_timeout": "compensate",
        "callback": {"success_when": None, "failure_when": None},
    }
    node["request"] = {**request, "success_status": [202, 200]}
    return node | extra


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("before_reply", [False, True])
def test_async_flow(service, settings, live_server, before_reply):
    settings.TRAMA_EGRESS_ALLOW = ["127.0.0.1"]
    settings.TRAMA_PUBLIC_URL = live_server.url
    service.script(
        "POST",
        "/pix",
        Reply(
            202,
            {"id": 1},
            callback=Callback(
                {"status": "succeeded", "output": {"paid": True}}, delay_s=0.2, before_reply=before_reply, times=2
            ),
        ),
    )
    d = store(
        {
            "pix": async_node(req("POST", service.url + "/pix"), next="ship"),
            "ship": task(req("POST", service.url + "/ship", body={"paid": "{{nodes.pix.callback.body.output.paid}}"})),
        },
        "pix",
    )
    ex, _ = start_execution(d, {})
    ex = drive(ex)
    service.join_callbacks()
    print(ex.status, ex.error, service.callback_results, list(ex.steps.values_list("node_id", "status", "detail")))
    assert ex.status == "SUCCEEDED"
    assert sorted(s for s, _ in service.callback_results) == [200, 202]
    assert service.calls(path="/ship")[0].body == {"paid": True}
