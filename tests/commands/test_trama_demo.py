"""trama_demo: store every example once."""

import pytest

from definitions.models import Definition
from tests.support.commands import run


@pytest.mark.django_db
def test_trama_demo_stores_every_example_and_prints_how_to_run_them():
    out = run("trama_demo")
    names = {"order-flow", "order-saga", "payment-authorization", "data-pipeline"}
    assert set(Definition.objects.values_list("name", flat=True)) == names
    for script in ("order_service.py", "finance_service.py", "pipeline_service.py"):
        assert script in out
    assert "manage.py trama_run payment-authorization --input -" in out
    assert run("trama_demo").count(": unchanged (") == 4
    assert Definition.objects.count() == 4
