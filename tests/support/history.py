"""A large execution history in one statement: what the plan tests and bench/ui_pages.py load.

One INSERT ... SELECT generate_series (seconds, not minutes, for 100,000 rows), then
ANALYZE so the planner sees the real sizes. The rows have no steps: pages that draw
steps get real executions of their own (bench/ui_pages.py runs them through workers).
"""

from django.db import connection

from tests.support.definitions import DefinitionFactory

ROWS = 100_000
BRANCHES = 2_000
DEFINITION_NAMES = ("orders", "billing", "shipping")
# Weighted like a real history: mostly successes, a few of everything else.
STATUSES = ["SUCCEEDED"] * 14 + ["FAILED", "COMPENSATED", "WAITING", "SLEEPING", "RUNNING", "CANCELLED"]
SPACING_S = 52  # 100,000 rows 52 s apart: 60 days of history, the newest created now

# Every filter of the executions list worth checking at this size (the plan test explains each,
# bench/ui_pages.py times each). Values match the loaded rows: orderId A-<i>, customer.id i % 1000.
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


def load_executions(rows: int = ROWS, branches: int = BRANCHES) -> list[int]:
    """``rows`` root executions over ``rows`` x 52 s (60 days for 100,000) on the three definitions of
    DEFINITION_NAMES (created here, one version each), inputs with an orderId and a customer id;
    ``branches`` branch executions under WAITING roots. Returns the definitions' ids."""
    ids = [DefinitionFactory(name=name).pk for name in DEFINITION_NAMES]
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
            FROM generate_series(1, %s) AS i,
                 LATERAL (SELECT now() - i * interval '{SPACING_S} seconds' AS ts) AS t
            """,
            [ids, rows],
        )
        cursor.execute(
            """
            INSERT INTO executions_execution
                (id, definition_id, parent_id, branch, status, input, state, fence, request_digest, created_by,
                 created_at, updated_at)
            SELECT gen_random_uuid(), definition_id, id, 'audit', 'RUNNING', '{}', '{}', 0, '', '', created_at, now()
            FROM executions_execution WHERE status = 'WAITING' LIMIT %s
            """,
            [branches],
        )
        cursor.execute("ANALYZE executions_execution")
    return ids
