"""The executions list page's queries: filters read from the URL, keyset pages, capped status counts.

Built to stay fast at 100,000+ executions: every filter maps onto an index
(tests/test_ui_list_plans.py checks the plans):

- the list of root executions, newest first: ``execution_root_created`` (partial, parent IS NULL);
- status: ``execution_status_created``; definition: ``execution_definition_created`` (by ids, not a join);
- id prefix: a range on the primary key (UUIDs sort as their hex digits do);
- a value in the input: ``@>`` containment through the GIN index ``execution_input`` (PostgreSQL);
- time range: a range on ``created_at``.

Pages are keyset pages on ``(created_at, id)``: the next page starts after the last
row shown, so page 2,000 costs what page 1 does (no OFFSET). Status counts are
capped at ``COUNT_CAP`` each, so no chip ever counts the whole table.
"""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Q, QuerySet
from django.http import QueryDict
from django.utils import timezone

from definitions.models import Definition
from definitions.validation.instants import InstantError, parse_instant
from executions.models import Execution, ExecutionStatus

PAGE_SIZE = 50
COUNT_CAP = 10_000
RANGES = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7), "30d": timedelta(days=30)}
# The parameters that make up a filter (the cursor is not one: chips and the form drop it).
FILTER_PARAMS = ("status", "definition", "id", "input", "range", "from", "to")
_HEX = re.compile(r"^[0-9a-f]{1,32}$")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class ExecutionFilters:
    """What the URL asks for, parsed; ``errors`` holds a message per parameter that made no sense."""

    statuses: list[str] = field(default_factory=list)
    definition: str = ""
    id_prefix: str = ""
    input_match: tuple[list[str], Any] | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    cursor: tuple[datetime, uuid.UUID] | None = None
    errors: list[str] = field(default_factory=list)


def parse_filters(params: QueryDict) -> ExecutionFilters:
    """The list's filters from the query string. Bad values become messages in ``errors``, never exceptions."""
    filters = ExecutionFilters(definition=params.get("definition", "").strip())
    _parse_statuses(filters, params.getlist("status"))
    _parse_id_prefix(filters, params.get("id", ""))
    _parse_input(filters, params.get("input", ""))
    _parse_times(filters, params)
    _parse_cursor(filters, params.get("after", ""))
    return filters


def _parse_statuses(filters: ExecutionFilters, raw: list[str]) -> None:
    wanted = [s.strip().upper() for value in raw for s in value.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in ExecutionStatus.values]
    if unknown:
        filters.errors.append(f"Unknown status {unknown[0]!r}: one of {', '.join(ExecutionStatus.values)}.")
    filters.statuses = [s for s in wanted if s in ExecutionStatus.values]


def _parse_id_prefix(filters: ExecutionFilters, raw: str) -> None:
    prefix = raw.strip().lower().replace("-", "")
    if prefix and not _HEX.match(prefix):
        filters.errors.append(f"An execution id is hexadecimal digits (a UUID or its start), not {raw.strip()!r}.")
        return
    filters.id_prefix = prefix


def _parse_input(filters: ExecutionFilters, raw: str) -> None:
    """``path = value``: ``orderId = A-17``, ``customer.id = 5``, ``$.flags.rush = true``."""
    raw = raw.strip()
    if not raw:
        return
    path, sep, value = raw.partition("=")
    keys = [key.strip() for key in path.strip().removeprefix("$").strip(".").split(".")]
    if not sep or not all(keys):
        filters.errors.append(f"Search the input as path = value (e.g. orderId = A-17), not {raw!r}.")
        return
    filters.input_match = (keys, _json_or_text(value.strip()))


def _json_or_text(text: str) -> Any:
    """A JSON literal (17, true, "A-17", null) as itself; anything else as the text typed."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _parse_times(filters: ExecutionFilters, params: QueryDict) -> None:
    preset = params.get("range", "").strip()
    if preset:
        if preset in RANGES:
            filters.created_from = timezone.now() - RANGES[preset]
        else:
            filters.errors.append(f"Unknown range {preset!r}: one of {', '.join(RANGES)}.")
    for name, attr in (("from", "created_from"), ("to", "created_to")):
        text = params.get(name, "").strip()
        if not text:
            continue
        try:
            setattr(filters, attr, parse_instant(text, naive_is_utc=True))
        except InstantError as exc:
            filters.errors.append(f"'{name}' {exc} (no zone means UTC), got {text!r}.")


def _parse_cursor(filters: ExecutionFilters, raw: str) -> None:
    if not raw:
        return
    micros, _, pk = raw.partition("_")
    try:
        moment = EPOCH + timedelta(microseconds=int(micros))
        filters.cursor = (moment, uuid.UUID(pk))
    except (ValueError, OverflowError, OSError):
        filters.errors.append("That page link is broken; showing the newest executions.")


# --- queries ---------------------------------------------------------------------------------


def matching_roots(filters: ExecutionFilters) -> QuerySet[Execution]:
    """Root executions (no branches: they are listed under their parent) matching every filter but status."""
    queryset = Execution.objects.filter(parent__isnull=True)
    if filters.definition:
        # Ids first, so the executions side is an index scan on (definition, created_at), never a join.
        ids = list(Definition.objects.filter(name=filters.definition).values_list("pk", flat=True))
        queryset = queryset.filter(definition_id__in=ids)
    if filters.id_prefix:
        low, high = _uuid_range(filters.id_prefix)
        # A branch's id finds the execution it belongs to (a branch has no row of its own).
        queryset = queryset.filter(Q(pk__gte=low, pk__lte=high) | Q(pk__in=_roots_of_branches(low, high)))
    if filters.input_match is not None:
        queryset = queryset.filter(_input_has(*filters.input_match))
    if filters.created_from is not None:
        queryset = queryset.filter(created_at__gte=filters.created_from)
    if filters.created_to is not None:
        queryset = queryset.filter(created_at__lt=filters.created_to)
    return queryset


def _uuid_range(prefix: str) -> tuple[uuid.UUID, uuid.UUID]:
    """The first and last UUID starting with these hex digits: a prefix search as a primary-key range."""
    return uuid.UUID(prefix.ljust(32, "0")), uuid.UUID(prefix.ljust(32, "f"))


def _roots_of_branches(low: uuid.UUID, high: uuid.UUID) -> list[uuid.UUID]:
    """The root executions of the branch executions whose id lies in [low, high], nested forks walked up."""
    in_range = Execution.objects.filter(pk__gte=low, pk__lte=high, parent__isnull=False)
    parents = list(in_range.values_list("parent_id", flat=True)[:PAGE_SIZE])
    roots: list[uuid.UUID] = []
    while parents:  # one query per level of nesting, through the primary key
        rows = list(Execution.objects.filter(pk__in=parents).values_list("pk", "parent_id"))
        roots += [pk for pk, parent in rows if parent is None]
        parents = [parent for _, parent in rows if parent is not None]
    return roots


def _input_has(keys: list[str], value: Any) -> Q:
    """The input holds exactly ``value`` at ``keys`` (17 is the number; "17", quoted, the text).

    One containment test, not an OR of a number and its text: PostgreSQL's estimate for two
    GIN conditions OR-ed together exceeds a sequential scan's, so it would read the table.
    """
    if connection.vendor == "postgresql":
        # Containment is what the GIN (jsonb_path_ops) index answers.
        nested = value
        for key in reversed(keys):
            nested = {key: nested}
        return Q(input__contains=nested)
    return Q(**{"input__" + "__".join(keys): value})  # SQLite has no @>: a key lookup, fine at its scale


def executions_page(filters: ExecutionFilters) -> tuple[list[Execution], str | None]:
    """One page of matching root executions, newest first, and the cursor of the next page (None on the last)."""
    rows = list(page_queryset(filters)[: PAGE_SIZE + 1])
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    return rows, (cursor_of(rows[-1]) if more else None)


def page_queryset(filters: ExecutionFilters) -> QuerySet[Execution]:
    """The page's query before its LIMIT (tests explain it)."""
    queryset = matching_roots(filters).select_related("definition").order_by("-created_at", "-id")
    if filters.statuses:
        queryset = queryset.filter(status__in=filters.statuses)
    if filters.cursor is not None:
        moment, pk = filters.cursor
        # "created_at <= t" is the index condition; the tie on t is settled by id.
        queryset = queryset.filter(Q(created_at__lte=moment), Q(created_at__lt=moment) | Q(id__lt=pk))
    return queryset


def cursor_of(execution: Execution) -> str:
    """``<created_at in µs since the epoch>_<id>``: exact (no float rounding) and safe in a URL as it is."""
    moment = execution.created_at - EPOCH
    micros = (moment.days * 86_400 + moment.seconds) * 1_000_000 + moment.microseconds
    return f"{micros}_{execution.pk}"


def status_counts(filters: ExecutionFilters) -> dict[str, int]:
    """Matching root executions per status, each capped at COUNT_CAP + 1 (shown as "10,000+").

    One statement: each status's capped count (``count_query``) is a branch of a UNION ALL, so the
    chips cost one round trip, not one per status (bench/ui_pages.py measured the eight apart).
    With an input search, the matches are first read once (``_few_matches_by_status``).
    """
    base = matching_roots(filters)
    if filters.input_match is not None:
        few = _few_matches_by_status(base)
        if few is not None:
            return {status: few.get(status, 0) for status in ExecutionStatus.values}
    branches, params = [], []
    for status in ExecutionStatus.values:
        sql, inner = count_query(base, status).query.sql_with_params()
        branches.append(f"SELECT %s, COUNT(*) FROM ({sql}) AS capped")
        params += [status, *inner]
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(branches), params)
        found = dict(cursor.fetchall())
    return {status: found[status] for status in ExecutionStatus.values}


def _few_matches_by_status(base: QuerySet[Execution]) -> dict[str, int] | None:
    """Per status, when at most COUNT_CAP executions match (read in one query); None when more do.

    For the input search: each branch of the UNION ALL would search the GIN index again, and a GIN
    search also reads the index's whole pending list (up to gin_pending_list_limit, 4 MB: rows
    inserted since the last vacuum), ~15 ms each at 100,000 rows. One search instead of eight.
    """
    statuses = list(few_matches_query(base))
    if len(statuses) > COUNT_CAP:
        return None  # a broad search: the capped counts, each stopping at the cap
    return dict(Counter(statuses))


def few_matches_query(base: QuerySet[Execution]) -> QuerySet[Execution]:
    """The statuses of at most COUNT_CAP + 1 matching executions, the newest (tests explain it).

    Ordered for the reason ``count_query`` is: unordered, the planner may take a sequential scan
    that it expects to stop at the cap, and read the whole table for a search that matches few.
    """
    return base.order_by("-created_at").values_list("status", flat=True)[: COUNT_CAP + 1]


def count_query(base: QuerySet[Execution], status: str) -> QuerySet[Execution]:
    """The capped count's inner query: at most COUNT_CAP + 1 index entries read per status.

    Ordered by ``created_at`` (the newest), which the status index gives for free: unordered, the
    planner may take a sequential scan that stops at the cap for a common status, and read the
    whole table for a rare one.
    """
    return base.filter(status=status).order_by("-created_at").values("pk")[: COUNT_CAP + 1]


def branches_by_root(roots: list[Execution]) -> dict[uuid.UUID, list[Execution]]:
    """Every branch execution under each of ``roots`` (nested ones too), keyed by its root's id."""
    branches = Execution.objects.order_by("created_at", "branch").branches_under([root.pk for root in roots])
    root_of = {root.pk: root.pk for root in roots}
    grouped: dict[uuid.UUID, list[Execution]] = {root.pk: [] for root in roots}
    for branch in branches:  # parents come before their branches, so each parent's root is known
        root_of[branch.pk] = root_of[branch.parent_id]
        grouped[root_of[branch.pk]].append(branch)
    return grouped


def definition_names() -> list[str]:
    """The stored definitions' names, for the filter's choice list."""
    stored = Definition.objects.filter(is_inline=False).order_by("name").values_list("name", flat=True)
    return list(stored.distinct())
