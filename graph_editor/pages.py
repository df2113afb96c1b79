"""The UI's overview pages: the dashboard at /, the executions list, the definitions and one definition.

Staff only, like every page of the UI. The queries live in graph_editor/listing.py
(the executions list) and graph_editor/overview.py (counts and rates); these views
read the request, call them and render.
"""

from datetime import timedelta

from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from executions.choices import page_statuses
from graph_editor import listing, overview
from graph_editor.views import stored_versions

DAY = timedelta(days=1)


@staff_member_required
def dashboard(request: HttpRequest) -> HttpResponse:
    context = {
        "windows": [
            ("Last hour", "1h", overview.counts_by_status(timedelta(hours=1))),
            ("Last 24 hours", "24h", overview.counts_by_status(DAY)),
        ],
        "slowest": overview.slowest_definitions(DAY),
        "failing": overview.most_failing_definitions(DAY),
        "waiting": overview.waiting_longest(),
    }
    return render(request, "graph_editor/dashboard.html", context)


@staff_member_required
def executions_list(request: HttpRequest) -> HttpResponse:
    """Root executions, filtered by the URL; ``?partial=1`` answers only the results (the auto-refresh)."""
    filters = listing.parse_filters(request.GET)
    rows, next_cursor = listing.executions_page(filters)
    branches = listing.branches_by_root(rows)
    context = {
        "filters": filters,
        "rows": [(row, branches[row.pk]) for row in rows],
        "counts": listing.status_counts(filters),
        "count_cap": listing.COUNT_CAP,
        "next_cursor": next_cursor,
        "params": request.GET,
        "definition_names": listing.definition_names(),
        "ranges": list(listing.RANGES),
    }
    partial = request.GET.get("partial") == "1"
    template = "graph_editor/executions_results.html" if partial else "graph_editor/executions.html"
    return render(request, template, context)


@staff_member_required
def definitions_list(request: HttpRequest) -> HttpResponse:
    return render(request, "graph_editor/definitions.html", {"summaries": overview.definition_summaries()})


@staff_member_required
def definition_page(request: HttpRequest, name: str, version: int | None = None) -> HttpResponse:
    """One definition: its graph (the version asked for, else the latest), its versions and their executions."""
    summaries = overview.definition_summaries(name)
    if not summaries:
        raise Http404(f"No definition {name!r}.")
    summary = summaries[0]
    shown = next((d for d in summary.versions if version is None or d.version == version), None)
    if shown is None:
        raise Http404(f"{name!r} has no version {version}.")
    context = {
        "summary": summary,
        "definition": shown,
        "versions": [(d, summary.runs.get(d.version, 0)) for d in summary.versions],
        "has_diff": len(stored_versions(name)) > 1,
        "statuses": page_statuses(),
    }
    return render(request, "graph_editor/definition.html", context)
