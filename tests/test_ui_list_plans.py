"""The executions list at 100,000 executions: every filter's queries read an index, never the whole table.

Plan shapes, not timings (timings belong to bench/): the rows are loaded with one
INSERT ... SELECT generate_series, the table is analysed, and each query the
page runs is EXPLAINed.
"""

import pytest
from django.db import connection
from django.http import QueryDict

from executions.models import Execution
from graph_editor import listing
from tests.support.history import FILTERS, ROWS, load_executions

pytestmark = pytest.mark.django_db


def plans_of(query: str) -> list[tuple[str, str]]:
    """(what, plan) for every query the list page runs for this query string."""
    filters = listing.parse_filters(QueryDict(query))
    assert filters.errors == [], filters.errors
    plans = [("page", listing.page_queryset(filters)[: listing.PAGE_SIZE + 1].explain())]
    base = listing.matching_roots(filters)
    plans += [(f"count {s}", listing.count_query(base, s).explain()) for s in ("SUCCEEDED", "FAILED", "PENDING")]
    return plans


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
