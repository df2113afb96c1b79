"""Run management commands in tests: through call_command, against the real database."""

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from tests.support.workers import REPO_ROOT


def run(*args, **options) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO(), **options)
    return out.getvalue()


def fails(*args) -> CommandError:
    with pytest.raises(CommandError) as caught:
        run(*args)
    return caught.value


def saga(service_url: str, name: str = "ship-it", fail_last: bool = False) -> dict:
    """reserve (compensated) -> charge: a saga against the TestService."""
    return {
        "name": name,
        "kind": "saga",
        "steps": [
            {"id": "reserve", "request": {"method": "POST", "url": f"{service_url}/reserve"},
             "compensation": {"method": "DELETE", "url": f"{service_url}/reserve"}},
            {"id": "charge", "request": {"method": "POST", "url": f"{service_url}/charge"}},
        ],
    }  # fmt: skip


def fork(service_url: str) -> dict:
    """a -> parallel(b | c) -> d: branches run as executions of their own."""

    def post(path: str, next_node: str | None = None) -> dict:
        node = {"type": "task", "request": {"method": "POST", "url": f"{service_url}/{path}"}}
        return node | ({"next": next_node} if next_node else {})

    return {"name": "fan-out", "kind": "graph", "start": "a", "nodes": {
        "a": post("a", "split"), "split": {"type": "parallel", "branches": ["b", "c"], "next": "d"},
        "b": post("b"), "c": post("c"), "d": post("d"),
    }}  # fmt: skip


def ago(**delta) -> timezone.datetime:
    return timezone.now() - timedelta(**delta)


EXAMPLES = REPO_ROOT / "examples"


def example(name: str) -> dict:
    return json.loads((EXAMPLES / name).read_text())
