import pytest

from executions.services import start_execution
from tests.engine_support import drive, req, store, task


@pytest.mark.django_db(transaction=True)
def test_chain_runs(service, settings):
    settings.TRAMA_EGRESS_ALLOW = ["127.0.0.1"]
    d = store(
        {
            "a": task(req("POST", service.url + "/a", body={"x": "{{payload.x}}"}), next="b"),
            "b": task(req("GET", service.url + "/b/{{nodes.a.response.body.echo.x}}")),
        },
        "a",
    )
    ex, _ = start_execution(d, {"x": 7})
    ex = drive(ex)
    print(ex.status, ex.error, ex.output, list(ex.steps.values_list("node_id", "status")))
    assert ex.status == "SUCCEEDED"
    assert [c.path for c in service.requests] == ["/a", "/b/7"]
