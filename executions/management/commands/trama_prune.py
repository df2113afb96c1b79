"""`manage.py trama_prune --older-than 30d`: delete the history of executions that ended long ago.

Only final executions (SUCCEEDED, COMPENSATED, FAILED, CANCELLED) are ever
deleted, with their steps; active ones are never touched, however old. Each
batch locks its rows and re-checks the status under the lock, so a FAILED
execution being retried at that moment is either retried or pruned, never
half of each. Branch executions of ``parallel`` nodes go with their parent,
never on their own (the parent's history lists their steps). Definitions stay
(executions pin them, and they are small).
"""

from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import QuerySet
from django.db.models.functions import Coalesce, Now

from executions.models import FINAL_STATUSES, Execution, Step
from trama_project.management.commands._cli import parse_duration


class Command(BaseCommand):
    help = "Delete finished executions (final statuses only) and their steps, older than --older-than, in batches."

    def add_arguments(self, parser):
        parser.add_argument("--older-than", required=True, help="Age since the execution ended, e.g. 30d, 12h, 90m.")
        parser.add_argument("--batch-size", type=int, default=500, help="Executions deleted per transaction.")
        parser.add_argument("--dry-run", action="store_true", help="Count what would be deleted; delete nothing.")

    def handle(self, *args, older_than: str, batch_size: int, dry_run: bool, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        age = parse_duration(older_than, "--older-than")
        total = prunable(age).count()
        if total == 0:
            raise CommandError(f"nothing to prune: no execution finished more than {older_than} ago")
        if dry_run:
            roots = list(prunable(age).values_list("pk", flat=True))
            steps = Step.objects.filter(execution_id__in=Execution.objects.family_ids(roots)).count()
            self.stdout.write(f"dry run: would delete {total} execution(s) and {steps} step(s) older than {older_than}")
            return
        deleted = self._prune(age, batch_size, total)
        self.stdout.write(f"pruned {deleted} execution(s) that finished more than {older_than} ago")

    def _prune(self, age: timedelta, batch_size: int, total: int) -> int:
        deleted = 0
        while True:
            count = prune_batch(age, batch_size)
            if count == 0:
                return deleted
            deleted += count
            self.stdout.write(f"deleted {deleted}/{total} executions")


def prunable(age: timedelta) -> QuerySet[Execution]:
    """Top-level final executions that ended more than ``age`` ago (by the database clock)."""
    ended = Coalesce("finished_at", "updated_at")
    top_level = Execution.objects.filter(parent__isnull=True)
    return top_level.alias(ended=ended).filter(status__in=FINAL_STATUSES, ended__lt=Now() - age)


def prune_batch(age: timedelta, batch_size: int) -> int:
    """Delete up to ``batch_size`` prunable executions and their steps; returns how many executions went.

    The rows are locked first (SKIP LOCKED: a row being retried or cancelled right
    now is left for the next run), so the status checked is the status deleted.
    """
    with transaction.atomic():
        ids = list(prunable(age).select_for_update(skip_locked=True).values_list("pk", flat=True)[:batch_size])
        if not ids:
            return 0
        family = Execution.objects.family_ids(ids)
        Step.objects.filter(execution_id__in=family).delete()
        Execution.objects.filter(pk__in=family).exclude(pk__in=ids).delete()
        Execution.objects.filter(pk__in=ids, status__in=FINAL_STATUSES).delete()
    return len(ids)
