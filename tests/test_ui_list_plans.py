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
from tests.support.definitions import DefinitionFactory

pytestmark = pytest.mark.django_db

ROWS = 100_000
BRANCHES = 2_000
# Weighted like a real history: mostly successes, a few of everything else.
STATUSES = ["SUCCEEDED"] * 14 + ["FAILED", "COMPENSATED", "WAITING", "SLEEPING", "RUNNING", "CANCELLED"]

FILTERS = [
    "",
    "status=FAILED",
    "status=SUCCEEDED",
    "status=FAILED,COMPENSATED",
    "definition=orders",
    "definition=orders&status=WAITING",
    "id=3fa8",
    "id=3fa85f64-5717",
    "input=orderId = A-4217",
    "input=customer.id = 17",
    "input=customer.id = 17&status=FAILED",
    "range=1h",
    "range=7d&status=SUCCEEDED",
    "from=2026-01-01T00:00&to=2026-01-02T00:00",
    "after=1700000000000000_ffffffff-ffff-4fff-bfff-ffffffffffff",
    "definition=billing&after=1700000000000000_ffffffff-ffff-4fff-bfff-ffffffffffff",
]


def load_executions() -> None:
    """100,000 root executions over 60 days, 3 definitions, inputs with an orderId; 2,000 branch executions."""
    ids = [DefinitionFactory(name=name).pk for name in ("orders", "billing", "shipping")]
    statuses = "ARRAY[" + ",".join(f"'{s}'" for s in STATUSES) + "]"
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO executions_execution
                (id, definition_id, branch, status, input, state, fence, request_digest, created_by,
                 created_at, updated_at, started_at, finished_at)
            SELECT gen_random_uuid(), (%s::bigint[])[1 + i %% 3], '', ({statuses})[1 + i %% {len(STATUSES)}],
                   jsonb_build_object('orderId', 'A-' || i, 'customer', jsonb_build_object('id', i %% 1000)),
                   '{{}}', 0, '', '', ts, ts, ts, ts + interval '2 seconds'
            FROM generate_series(1, %s) AS i, LATERAL (SELECT now() - i * interval '52 seconds' AS ts) AS t
            """,
            [ids, ROWS],
        )
        cursor.execute(
            """
            INSERT INTO executions_execution
                (id, definition_id, parent_id, branch, status, input, state, fence, request_digest, created_by,
                 created_at, updated_at)
            SELECT gen_random_uuid(), definition_id, id, 'audit', 'RUNNING', '{}', '{}', 0, '', '', created_at, now()
            FROM executions_execution WHERE status = 'WAITING' LIMIT %s
            """,
            [BRANCHES],
        )
        cursor.execute("ANALYZE executions_execution")


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
