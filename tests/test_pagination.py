"""Pagination of every list endpoint: ``limit`` (1 to 500, default 50) and ``offset``, checked before any query."""

import pytest

from definitions.services import store_definition
from executions.services import start_execution

pytestmark = pytest.mark.django_db

EXECUTIONS = "/api/v1/executions/"
DEFINITIONS = "/api/v1/definitions/"
VERSIONS = "/api/v1/definitions/orders/versions/"
LIMITS = "from 1 to 500"
OFFSETS = "from 0 to 1000000000"


@pytest.fixture
def orders():
    """One stored definition with one execution: every list has exactly one row."""
    steps = [{"id": "a", "request": {"method": "POST", "url": "http://svc.local/a"}}]
    definition = store_definition({"name": "orders", "kind": "saga", "steps": steps})
    start_execution(definition, {})
    return definition


@pytest.mark.parametrize(
    ("url", "name", "value", "allowed"),
    [
        (EXECUTIONS, "limit", "99999999999999999999", LIMITS),
        (EXECUTIONS, "limit", "501", LIMITS),
        (EXECUTIONS, "limit", "0", LIMITS),
        (EXECUTIONS, "limit", "-1", LIMITS),
        (EXECUTIONS, "limit", "ten", LIMITS),
        (EXECUTIONS, "offset", "99999999999999999999", OFFSETS),
        (EXECUTIONS, "offset", "1000000001", OFFSETS),
        (EXECUTIONS, "offset", "-5", OFFSETS),
        (DEFINITIONS, "limit", "99999999999999999999", LIMITS),
        (DEFINITIONS, "offset", "1.5", OFFSETS),
        (VERSIONS, "limit", "100000", LIMITS),
        (VERSIONS, "offset", "99999999999999999999", OFFSETS),
    ],
)
def test_a_value_out_of_range_is_a_400_naming_the_parameter(api, orders, url, name, value, allowed):
    response = api.get(url, {name: value})
    assert response.status_code == 400
    message = f"{name} must be an integer {allowed}, got {value!r}"
    assert response.json() == {"detail": message, "errors": [{"path": name, "message": message}]}


@pytest.mark.parametrize("url", [EXECUTIONS, DEFINITIONS, VERSIONS])
def test_up_to_500_per_page_and_an_empty_value_means_the_default(api, orders, url):
    page = api.get(url, {"limit": 500, "offset": 0}).json()
    assert (page["count"], len(page["results"])) == (1, 1)
    page = api.get(url, {"limit": "", "offset": ""}).json()
    assert (page["count"], len(page["results"])) == (1, 1)


def test_an_offset_past_the_end_is_an_empty_page(api, orders):
    page = api.get(EXECUTIONS, {"offset": 1_000_000_000}).json()
    assert (page["count"], page["results"]) == (1, [])
