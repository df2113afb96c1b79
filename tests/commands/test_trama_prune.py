"""trama_prune: delete old finished executions (and their branches and steps), never active ones."""

import pytest

from definitions.services import store_definition
from executions.models import Execution, Step
from executions.services import start_execution
from tests.support.commands import ago, fails, fork, run, saga
from tests.support.engine import drive


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
