"""Filters the UI's list pages share: compact durations and relative times, query strings that keep the filters."""

from datetime import datetime, timedelta

from django import template
from django.http import QueryDict
from django.utils import timezone

register = template.Library()


def compact(delta: timedelta) -> str:
    """``1.2 s``, ``4 m 05 s``, ``3 h 10 m``, ``2 d 4 h``: two units at most, so a column stays narrow."""
    seconds = max(delta.total_seconds(), 0.0)
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} m {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} m"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


@register.filter
def duration(execution) -> str:
    """How long an execution ran (so far, while it runs); ``—`` before it started."""
    if execution.started_at is None:
        return "—"
    return compact((execution.finished_at or timezone.now()) - execution.started_at)


@register.filter
def mean_duration(delta: timedelta | None) -> str:
    return "—" if delta is None else compact(delta)


@register.filter
def ago(moment: datetime | None) -> str:
    """``12 s ago``, ``5 m ago``, ``3 h ago``, ``2 d ago`` (``in …`` for a time to come)."""
    if moment is None:
        return "—"
    delta = timezone.now() - moment
    text = compact(abs(delta)).split(" ")
    short = f"{text[0]} {text[1]}"
    return f"{short} ago" if delta.total_seconds() >= 0 else f"in {short}"


@register.filter
def percent(rate: float) -> str:
    return f"{rate * 100:.0f} %" if rate >= 0.01 or rate == 0 else "<1 %"


@register.simple_tag
def query_with(params: QueryDict, **changes) -> str:
    """The current query string with ``changes`` applied (a value of None drops the parameter); no page cursor."""
    query = params.copy()
    query.pop("after", None)
    query.pop("partial", None)
    for name, value in changes.items():
        query.pop(name, None)
        if value not in (None, ""):
            query[name] = value
    encoded = query.urlencode()
    return f"?{encoded}" if encoded else "?"
