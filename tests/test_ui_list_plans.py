"""The executions list at 100,000 executions: every filter's queries read an index, never the whole table.

Plan shapes and statement counts, not timings (timings belong to bench/ui_pages.py):
the rows are loaded with one INSERT ... SELECT generate_series
(tests/support/history.py), the table is analysed, and each query the page runs is
EXPLAINed. Also: a definition page reads the executions once.
"""

import pytest
from django.db import connection
from django.http import QueryDict
from django.test.utils import CaptureQueriesContext

from executions.models import Execution, ExecutionStatus
from graph_editor import listing
from tests.support.definitions import DefinitionFactory
from tests.support.history import FILTERS, ROWS, load_executions

pytestmark = pytest.mark.django_db


def plans_of(query: str) -> list[tuple[str, str]]:
    """(what, plan) for every query the list page runs for this query string."""
    filters = listing.parse_filters(QueryDict(query))
    assert filters.errors == [], filters.errors
    plans = [("page", listing.page_queryset(filters)[: listing.PAGE_SIZE + 1].explain())]
    base = listing.matching_roots(filters)
    plans += [(f"count {s}", listing.count_query(base, s).explain()) for s in ("SUCCEEDED", "FAILED", "PENDING")]
    if filters.input_match is not None:
        plans.append(("counts of an input search", listing.few_matches_query(base).explain()))
    return plans


def counted_apart(query: str) -> dict[str, int]:
    """The chips' counts one status at a time: what status_counts must answer, in fewer statements."""
    base = listing.matching_roots(listing.parse_filters(QueryDict(query)))
    return {s: listing.count_query(base, s).count() for s in ExecutionStatus.values}


def test_every_filter_of_the_executions_list_reads_an_index_at_100k_executions():
    """Loaded once (about 20 s): every filter, then the input and id searches' own indexes."""
    if connection.vendor != "postgresql":
        pytest.skip("the plans checked are PostgreSQL's (set DATABASE_URL)")
    load_executions()
    assert Execution.objects.filter(parent__isnull=True).count() == ROWS
    for query in FILTERS:
        for what, plan in plans_of(query):
            assert "Seq Scan on executions_execution" not in plan, f"{query!r} {what}:\n{plan}"
            assert "Index" in plan and "executions_execution" in plan, f"{query!r} {what}:\n{plan}"
    # The two searches that need an index of their own get it: GIN on input, the primary key for ids.
    by_input = listing.parse_filters(QueryDict("input=orderId = A-4217"))
    assert "execution_input" in listing.page_queryset(by_input)[:51].explain()
    assert [e.input["orderId"] for e in listing.executions_page(by_input)[0]] == ["A-4217"]
    by_id = listing.parse_filters(QueryDict("id=3fa85f"))
    assert "executions_execution_pkey" in listing.page_queryset(by_id)[:51].explain()
    # The chips: one statement for all eight counts; an input search reads the GIN index once, not per status.
    for query in ("", "input=customer.id = 17", "input=orderId = A-4217&status=FAILED"):
        with CaptureQueriesContext(connection) as queries:
            counts = listing.status_counts(listing.parse_filters(QueryDict(query)))
        assert counts == counted_apart(query), query
        assert len(queries) == 1, [q["sql"] for q in queries]
    assert counts["SLEEPING"] == sum(counts.values()) == 1  # A-4217 is SLEEPING; a chip ignores the status asked
    assert counted_apart("")["SUCCEEDED"] == listing.COUNT_CAP + 1


def test_a_definition_page_reads_the_executions_once(client, django_user_model):
    """Its total, failure rate and per-version counts come from one grouped query (two full passes before)."""
    client.force_login(django_user_model.objects.create_user("ops", is_staff=True))
    v1, v2 = DefinitionFactory(name="orders"), DefinitionFactory(name="orders", version=2)
    other = DefinitionFactory(name="billing")
    for definition, status in [(v1, "SUCCEEDED"), (v1, "FAILED"), (v2, "COMPENSATED"), (v2, "SUCCEEDED"),
                               (v2, "SUCCEEDED"), (other, "FAILED")]:  # fmt: skip
        Execution.objects.create(definition=definition, status=status, input={}, state={})
    with CaptureQueriesContext(connection) as queries:
        page = client.get("/ui/definitions/orders/")
    assert page.status_code == 200
    on_executions = [q["sql"] for q in queries if "executions_execution" in q["sql"]]
    assert len(on_executions) == 1, on_executions
    html = page.content.decode()
    assert '<dd class="total">5</dd>' in html and "40 %" in html  # 2 of 5 failed, billing's left out
    assert 'v1 <span class="muted">2 runs</span>' in html and 'v2 <span class="muted">3 runs</span>' in html
