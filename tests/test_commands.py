"""Operator commands: tokens, trama_run, trama_stuck, trama_prune, trama_export/import, trama_demo.

Commands run through ``call_command`` against the real database (and, for
trama_run, the real engine against a TestService); one test runs manage.py as a
process to check the exit code and that errors never show a traceback.
"""

import json
import os
import subprocess
import sys
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from rest_framework.test import APIClient

from definitions.models import Definition
from definitions.services import store_definition
from executions.models import Execution, Step
from executions.services import start_execution
from tests.support import Reply
from tests.support.engine import drive
from tests.support.workers import REPO_ROOT, database_url
from trama_project.models import ApiToken

EXAMPLES = REPO_ROOT / "examples"


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


def input_file(tmp_path: Path, content: str) -> str:
    path = tmp_path / "input.json"
    path.write_text(content)
    return str(path)


# --- API tokens ------------------------------------------------------------------------------------------


def authorized(raw: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client.get("/api/v1/definitions/").status_code


@pytest.mark.django_db
def test_list_api_tokens_shows_name_and_prefix_but_never_the_token():
    token, raw = ApiToken.mint("billing")
    table = run("list_api_tokens")
    as_json = json.loads(run("list_api_tokens", "--json"))
    assert "billing" in table and token.prefix in table
    assert raw not in table and raw not in json.dumps(as_json) and token.token_hash not in table
    assert as_json == [{"name": "billing", "prefix": token.prefix, "created": as_json[0]["created"], "revoked": None}]


@pytest.mark.django_db
def test_list_api_tokens_says_when_there_are_none():
    assert "no API tokens" in run("list_api_tokens")


@pytest.mark.django_db
def test_revoke_by_name_makes_the_token_401_and_keeps_the_row():
    _, revoked_raw = ApiToken.mint("old-ci")
    _, other_raw = ApiToken.mint("billing")
    assert authorized(revoked_raw) == 200
    assert "revoked 1 token(s): old-ci" in run("revoke_api_token", "old-ci")
    assert authorized(revoked_raw) == 401
    assert authorized(other_raw) == 200
    assert ApiToken.objects.get(name="old-ci").revoked_at is not None
    assert "already revoked" in run("revoke_api_token", "old-ci")


@pytest.mark.django_db
def test_revoke_by_prefix_picks_one_of_several_tokens_with_a_name():
    first, first_raw = ApiToken.mint("ci")
    _, second_raw = ApiToken.mint("ci")
    assert "2 active tokens match 'ci'" in str(fails("revoke_api_token", "ci"))
    run("revoke_api_token", first.prefix)
    assert (authorized(first_raw), authorized(second_raw)) == (401, 200)
    assert "revoked 1 token(s)" in run("revoke_api_token", "ci", "--all")
    assert authorized(second_raw) == 401


@pytest.mark.django_db
def test_revoke_unknown_token_is_an_error():
    assert "no API token has the name or prefix 'nobody'" in str(fails("revoke_api_token", "nobody"))


# --- trama_run -----------------------------------------------------------------------------------------------


@pytest.fixture
def egress(settings):
    settings.TRAMA_EGRESS_ALLOW = ["127.0.0.1"]


@pytest.mark.django_db(transaction=True)
def test_trama_run_drive_succeeds_with_exit_code_0_and_a_line_per_step(service, egress, tmp_path):
    store_definition(saga(service.url))
    out = run("trama_run", "ship-it", "--input", input_file(tmp_path, '{"order": 7}'), "--drive")
    lines = out.splitlines()
    assert lines[0].startswith("started ") and "(ship-it v1)" in lines[0]
    assert any("reserve #1 succeeded HTTP 200" in line for line in lines)
    assert any("charge #1 succeeded HTTP 200" in line for line in lines)
    assert lines[-1].startswith("SUCCEEDED ")
    execution = Execution.objects.get()
    assert (execution.status, execution.input, execution.created_by) == ("SUCCEEDED", {"order": 7}, "cli")
    assert [r.path for r in service.requests] == ["/reserve", "/charge"]


@pytest.mark.django_db(transaction=True)
def test_trama_run_drive_exits_2_when_the_execution_compensates(service, egress, tmp_path):
    store_definition(saga(service.url))
    service.default("POST", "/charge", Reply(400, {"error": "card declined"}))
    error = fails("trama_run", "ship-it", "--input", input_file(tmp_path, "{}"), "--drive")
    assert error.returncode == 2
    assert "ended COMPENSATED" in str(error)
    assert Execution.objects.get().status == "COMPENSATED"
    assert [(r.method, r.path) for r in service.requests][-1] == ("DELETE", "/reserve")


@pytest.mark.django_db(transaction=True)
def test_trama_run_drive_exits_1_when_the_execution_fails(service, egress):
    source = saga(service.url)
    source["steps"][1]["on_failure"] = "fail"
    store_definition(source)
    service.default("POST", "/charge", Reply(400))
    assert fails("trama_run", "ship-it", "--drive").returncode == 1
    assert Execution.objects.get().status == "FAILED"


@pytest.mark.django_db(transaction=True)
def test_trama_run_drive_honours_sleeps_and_retry_backoff(service, egress):
    source = {"name": "slow", "kind": "graph", "start": "nap", "nodes": {
        "nap": {"type": "sleep", "duration_s": 0.3, "next": "call"},
        "call": {"type": "task", "request": {"method": "POST", "url": f"{service.url}/call"},
                 "retry": {"max_attempts": 2, "backoff_s": 0.2}},
    }}  # fmt: skip
    store_definition(source)
    service.script("POST", "/call", Reply(503))
    out = run("trama_run", "slow", "--drive")
    assert "call #1 failed HTTP 503" in out and "call #2 succeeded HTTP 200" in out
    calls = service.calls("POST", "/call")
    assert calls[1].at - calls[0].at >= 0.15


def fork(service_url: str) -> dict:
    """a -> parallel(b | c) -> d: branches run as executions of their own."""

    def post(path: str, next_node: str | None = None) -> dict:
        node = {"type": "task", "request": {"method": "POST", "url": f"{service_url}/{path}"}}
        return node | ({"next": next_node} if next_node else {})

    return {"name": "fan-out", "kind": "graph", "start": "a", "nodes": {
        "a": post("a", "split"), "split": {"type": "parallel", "branches": ["b", "c"], "next": "d"},
        "b": post("b"), "c": post("c"), "d": post("d"),
    }}  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_trama_run_drive_advances_parallel_branches_too(service, egress):
    store_definition(fork(service.url))
    out = run("trama_run", "fan-out", "--drive", "--timeout", "20")
    assert "<b> b #1 succeeded HTTP 200" in out and "<c> c #1 succeeded HTTP 200" in out
    assert out.splitlines()[-1].startswith("SUCCEEDED ")
    assert sorted(r.path for r in service.requests) == ["/a", "/b", "/c", "/d"]


@pytest.mark.workers
def test_trama_run_follows_an_execution_that_real_workers_advance(service, egress, worker_pool):
    worker_pool.start_worker()
    worker_pool.start_timers()
    store_definition(saga(service.url))
    out = run("trama_run", "ship-it", "--timeout", "60")
    assert "reserve #1 succeeded HTTP 200" in out and out.splitlines()[-1].startswith("SUCCEEDED ")
    assert [r.path for r in service.requests] == ["/reserve", "/charge"]


@pytest.mark.django_db
def test_trama_run_unknown_definition_is_bad_usage():
    error = fails("trama_run", "nope")
    assert (error.returncode, str(error).split(" (")[0]) == (3, "unknown definition 'nope'")
    assert fails("trama_run", "nope", "--version", "2").returncode == 3


@pytest.mark.django_db
def test_trama_run_unknown_version_is_bad_usage(service):
    store_definition(saga(service.url))
    assert "unknown definition 'ship-it' version 9" in str(fails("trama_run", "ship-it", "--version", "9"))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "does not exist"), ("{not json", "is not valid JSON"), ("[1, 2]", "must hold a JSON object")],
)
def test_trama_run_bad_input_file_is_bad_usage_and_starts_nothing(service, tmp_path, content, message):
    store_definition(saga(service.url))
    path = input_file(tmp_path, content) if content is not None else str(tmp_path / "missing.json")
    error = fails("trama_run", "ship-it", "--input", path)
    assert error.returncode == 3 and message in str(error)
    assert not Execution.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_trama_run_from_the_shell_exits_3_without_a_traceback():
    env = os.environ | {"DATABASE_URL": database_url()}
    done = subprocess.run(
        [sys.executable, "manage.py", "trama_run", "missing-flow"], cwd=REPO_ROOT, env=env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert "unknown definition 'missing-flow'" in done.stderr and "Traceback" not in done.stderr
    usage = subprocess.run(
        [sys.executable, "manage.py", "trama_run"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert usage.returncode == 3 and "Traceback" not in usage.stderr


# --- trama_stuck ---------------------------------------------------------------------------------------------


def ago(**delta) -> timezone.datetime:
    return timezone.now() - timedelta(**delta)


@pytest.mark.django_db(transaction=True)
def test_trama_stuck_lists_overdue_waits_expired_leases_unclaimed_and_failed(service, egress):
    definition = store_definition(saga(service.url))
    waiting, _ = start_execution(definition, {"n": 1})
    Execution.objects.filter(pk=waiting.pk).update(status="WAITING", due_at=ago(minutes=10))
    leased, _ = start_execution(definition, {"n": 2})
    Execution.objects.filter(pk=leased.pk).update(status="RUNNING", lease_until=ago(minutes=5), due_at=ago(minutes=5))
    unclaimed, _ = start_execution(definition, {"n": 3})
    Execution.objects.filter(pk=unclaimed.pk).update(due_at=ago(minutes=3))
    service.default("POST", "/charge", Reply(400))
    failed_source = saga(service.url, name="fails")
    failed_source["steps"][1]["on_failure"] = "fail"
    failed = drive(start_execution(store_definition(failed_source), {})[0])
    healthy, _ = start_execution(definition, {"n": 4})  # due now: not late by the margin
    fine = drive(start_execution(store_definition(saga(service.url, name="fine")), {})[0])
    assert (failed.status, fine.status) == ("FAILED", "COMPENSATED")

    rows = json.loads(run("trama_stuck", "--json"))
    reasons = {row["id"]: row["reason"] for row in rows}
    assert reasons == {
        str(waiting.pk): "overdue",
        str(leased.pk): "lease_expired",
        str(unclaimed.pk): "not_picked_up",
        str(failed.pk): "failed",
    }
    assert str(healthy.pk) not in reasons
    table = run("trama_stuck")
    assert "REASON" in table and "lease_expired" in table and "4 stuck execution(s)" in table
    assert str(failed.pk) not in run("trama_stuck", "--no-failed")
    assert str(waiting.pk) not in run("trama_stuck", "--margin", "1h")


@pytest.mark.django_db
def test_trama_stuck_says_nothing_stuck_and_rejects_a_bad_margin():
    assert "nothing stuck" in run("trama_stuck")
    assert "--margin must be a number and a unit" in str(fails("trama_stuck", "--margin", "soon"))


# --- trama_prune ---------------------------------------------------------------------------------------------


@pytest.fixture
def aged(service, egress, transactional_db):
    """Two old final executions, a recent final one, and an old active one."""
    definition = store_definition(saga(service.url))
    old = [drive(start_execution(definition, {"n": n})[0]) for n in (1, 2)]
    recent = drive(start_execution(definition, {"n": 3})[0])
    active, _ = start_execution(definition, {"n": 4})
    Execution.objects.filter(pk__in=[e.pk for e in old]).update(finished_at=ago(days=40))
    Execution.objects.filter(pk=active.pk).update(created_at=ago(days=90), updated_at=ago(days=90))
    return {"old": old, "recent": recent, "active": active}


def test_trama_prune_deletes_old_finished_executions_and_their_steps_only(aged):
    out = run("trama_prune", "--older-than", "30d", "--batch-size", "1")
    assert "deleted 1/2 executions" in out and "deleted 2/2 executions" in out
    assert "pruned 2 execution(s)" in out
    remaining = set(Execution.objects.values_list("pk", flat=True))
    assert remaining == {aged["recent"].pk, aged["active"].pk}
    assert not Step.objects.filter(execution_id__in=[e.pk for e in aged["old"]]).exists()
    assert Step.objects.filter(execution=aged["recent"]).count() == 2


def test_trama_prune_never_deletes_active_executions(aged):
    Execution.objects.filter(pk=aged["recent"].pk).update(finished_at=ago(minutes=1))
    run("trama_prune", "--older-than", "1s")
    assert set(Execution.objects.values_list("status", flat=True)) == {"PENDING"}
    assert "nothing to prune" in str(fails("trama_prune", "--older-than", "1s"))


@pytest.mark.django_db(transaction=True)
def test_trama_prune_deletes_parallel_branches_with_their_parent_only(service, egress):
    store_definition(fork(service.url))
    run("trama_run", "fan-out", "--drive", "--quiet")
    parent = Execution.objects.get(parent__isnull=True)
    assert parent.branches.count() == 2
    Execution.objects.filter(parent=parent).update(finished_at=ago(days=40))
    assert "nothing to prune" in str(fails("trama_prune", "--older-than", "30d"))  # the parent ended just now
    assert Execution.objects.count() == 3
    Execution.objects.filter(pk=parent.pk).update(finished_at=ago(days=40))
    assert "pruned 1 execution(s)" in run("trama_prune", "--older-than", "30d")
    assert not Execution.objects.exists() and not Step.objects.exists()


def test_trama_prune_dry_run_deletes_nothing(aged):
    out = run("trama_prune", "--older-than", "30d", "--dry-run")
    assert "would delete 2 execution(s) and 4 step(s)" in out
    assert Execution.objects.count() == 4


@pytest.mark.django_db
def test_trama_prune_with_nothing_to_prune_is_an_error():
    assert "nothing to prune" in str(fails("trama_prune", "--older-than", "30d"))


@pytest.mark.django_db
@pytest.mark.parametrize("age", ["30", "30y", "0d", "-1d", ""])
def test_trama_prune_rejects_a_bad_age(age):
    assert "--older-than must" in str(fails("trama_prune", f"--older-than={age}"))


# --- trama_export / trama_import ----------------------------------------------------------------------------


def example(name: str) -> dict:
    return json.loads((EXAMPLES / name).read_text())


@pytest.mark.django_db
def test_export_then_import_round_trips_and_reimport_is_unchanged(tmp_path):
    flow = example("order-flow.json")
    store_definition(flow)
    changed = json.loads(json.dumps(flow))
    changed["nodes"]["pix"]["timeout_s"] = 120
    store_definition(changed)
    store_definition(example("order-saga.json"))

    out = run("trama_export", "--dir", str(tmp_path / "defs"))
    assert "exported 2 definition file(s)" in out
    assert json.loads((tmp_path / "defs" / "order-flow.json").read_text()) == changed
    assert json.loads((tmp_path / "defs" / "order-saga.json").read_text()) == example("order-saga.json")

    again = run("trama_import", str(tmp_path / "defs"))
    assert "unchanged (order-flow v2)" in again and "unchanged (order-saga v1)" in again
    assert Definition.objects.count() == 3

    edited = tmp_path / "defs" / "order-flow.json"
    edited.write_text(json.dumps(flow))
    assert "stored (order-flow v3)" in run("trama_import", str(edited))
    assert Definition.objects.get(name="order-flow", version=3).source == flow


@pytest.mark.django_db
def test_export_all_versions_writes_one_file_per_version_and_imports_unchanged(tmp_path):
    flow = example("order-flow.json")
    store_definition(flow)
    store_definition(flow | {"defaults": {"request": {"timeout_s": 3}}})
    run("trama_export", "order-flow", "--all-versions", "--dir", str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["order-flow.v1.json", "order-flow.v2.json"]
    out = run("trama_import", str(tmp_path))
    assert "v1.json: unchanged (order-flow v1)" in out and "v2.json: unchanged (order-flow v2)" in out
    assert Definition.objects.count() == 2


@pytest.mark.django_db
def test_import_into_an_empty_database_recreates_versions_in_order(tmp_path):
    for version in (1, 2, 10):
        source = example("order-flow.json") | {"name": "flow", "defaults": {"request": {"timeout_s": version}}}
        (tmp_path / f"flow.v{version}.json").write_text(json.dumps(source))
    run("trama_import", str(tmp_path))
    stored = Definition.objects.filter(name="flow").order_by("version")
    assert [d.source["defaults"]["request"]["timeout_s"] for d in stored] == [1, 2, 10]


@pytest.mark.django_db
def test_export_unknown_definition_is_an_error(tmp_path):
    store_definition(example("order-saga.json"))
    assert "unknown definition(s): nope" in str(fails("trama_export", "nope", "--dir", str(tmp_path)))
    assert not list(tmp_path.iterdir())


@pytest.mark.django_db
def test_import_invalid_file_prints_each_error_path_and_stores_nothing(tmp_path):
    bad = example("order-flow.json")
    bad["nodes"]["route"]["cases"][0]["next"] = "pixx"
    bad["nodes"]["reserve"]["retry"]["max_attempts"] = -1
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    (tmp_path / "broken.json").write_text("{nope")
    out = StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("trama_import", str(tmp_path), stdout=out)
    assert "2 of 2 file(s) invalid" in str(caught.value)
    text = out.getvalue()
    assert "nodes.route.cases[0].next: unknown node 'pixx'" in text
    assert "nodes.reserve.retry.max_attempts" in text
    assert "broken.json: invalid" in text and "not valid JSON" in text
    assert not Definition.objects.exists()


@pytest.mark.django_db
def test_import_missing_path_is_an_error(tmp_path):
    assert "is neither a file nor a directory" in str(fails("trama_import", str(tmp_path / "nope.json")))


# --- trama_demo -----------------------------------------------------------------------------------------------


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
