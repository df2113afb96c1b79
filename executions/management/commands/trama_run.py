"""`manage.py trama_run DEFINITION --input FILE|-`: start a stored definition from the shell and follow it.

The start goes through ``executions.services.start_execution`` like an API
start; the progress comes from the Step table, so what is printed is what the
history holds. Workers (``manage.py qcluster`` + ``trama_timers``) advance the
execution; ``--drive`` advances it in this process instead, for a machine with
no worker running. The exit code says how it ended, for scripts.
"""

from __future__ import annotations

import json
import time
from datetime import datetime

from django.core.management.base import BaseCommand, CommandError
from django.db.models.functions import Now
from django.utils import timezone

from definitions.models import Definition
from definitions.services import DefinitionNotFound, find_definition
from executions.models import FINAL_STATUSES, Execution, ExecutionStatus, Step
from executions.services import advance_execution, start_execution
from trama_project.management.commands._cli import USAGE_EXIT_CODE, load_json_object, usage_errors_exit_with

EXIT_CODES = {
    ExecutionStatus.SUCCEEDED: 0,
    ExecutionStatus.FAILED: 1,
    ExecutionStatus.COMPENSATED: 2,
    ExecutionStatus.CANCELLED: 2,
}
TIMEOUT_EXIT_CODE = 4
POLL_S = 0.2
# Without --drive, a start nobody picks up this long means no worker is running: say so once.
NO_WORKER_HINT_AFTER_S = 10.0


class Command(BaseCommand):
    help = (
        "Start an execution of a stored definition and print a line per step until it ends. "
        "Exit code: 0 SUCCEEDED, 1 FAILED, 2 COMPENSATED or CANCELLED, 3 bad usage, 4 --timeout passed."
    )

    def create_parser(self, prog_name, subcommand, **kwargs):
        # "resolve": our --version (of the definition) replaces Django's --version (of Django).
        parser = super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)
        return usage_errors_exit_with(parser)

    def add_arguments(self, parser):
        parser.add_argument("definition", help="Name of a stored definition.")
        parser.add_argument("--version", type=int, dest="def_version", help="A version (default: the latest).")
        parser.add_argument("--input", default=None, help="JSON object file for the input, or '-' for stdin.")
        parser.add_argument("--drive", action="store_true", help="Advance the execution here (no worker needed).")
        parser.add_argument("--timeout", type=float, default=None, help="Stop following after this many seconds.")
        parser.add_argument("--quiet", action="store_true", help="Print only the final status line.")

    def handle(self, *args, definition: str, def_version: int | None, input: str | None, **options):
        if not _usage_ok(options):
            raise CommandError("--timeout must be more than zero", returncode=USAGE_EXIT_CODE)
        stored = _definition(definition, def_version)
        payload = _payload(input)
        execution, _ = start_execution(stored, payload, created_by="cli")
        self.stdout.write(f"started {execution.pk} ({stored.name} v{stored.version})")
        follower = _Follower(self, execution, quiet=options["quiet"])
        status = follower.follow(drive=options["drive"], timeout=options["timeout"])
        self._finish(execution.pk, status)

    def _finish(self, execution_id, status: str) -> None:
        execution = Execution.objects.get(pk=execution_id)
        if status not in FINAL_STATUSES:
            raise CommandError(
                f"execution {execution_id} is still {status} (--timeout passed); it goes on without this command",
                returncode=TIMEOUT_EXIT_CODE,
            )
        detail = execution.output if status == ExecutionStatus.SUCCEEDED else execution.error
        self.stdout.write(f"{status} {execution_id} {json.dumps(detail)}")
        if EXIT_CODES[status]:
            raise CommandError(f"execution {execution_id} ended {status}", returncode=EXIT_CODES[status])


def _usage_ok(options: dict) -> bool:
    return options["timeout"] is None or options["timeout"] > 0


def _payload(path: str | None) -> dict:
    """The input object; a bad file is bad usage (exit 3)."""
    if not path:
        return {}
    try:
        return load_json_object(path, "input")
    except CommandError as exc:
        raise CommandError(str(exc), returncode=USAGE_EXIT_CODE) from None


def _definition(name: str, version: int | None) -> Definition:
    try:
        return find_definition(name, version)
    except DefinitionNotFound:
        which = f"{name!r}" if version is None else f"{name!r} version {version}"
        raise CommandError(f"unknown definition {which} (store it first: manage.py trama_import FILE)",
                           returncode=USAGE_EXIT_CODE)  # fmt: skip


class _Follower:
    """Polls one execution, its parallel branches and their steps, printing each step once per status."""

    def __init__(self, command: BaseCommand, execution: Execution, quiet: bool):
        self.command, self.execution_id, self.quiet = command, execution.pk, quiet
        self.printed: dict[tuple, str] = {}
        self.status = execution.status

    def follow(self, drive: bool, timeout: float | None) -> str:
        """Return the final status, or the current one when ``timeout`` passed first."""
        started = time.monotonic()
        hinted = drive
        while True:
            family = _family(self.execution_id)
            root = family[0]
            self._report(family)
            if root.status in FINAL_STATUSES:
                return root.status
            if timeout is not None and time.monotonic() - started > timeout:
                return root.status
            due = [member.pk for member in family if _due(member)]
            if drive and due:
                for execution_id in due:
                    advance_execution(execution_id)
                continue
            if not hinted and time.monotonic() - started > NO_WORKER_HINT_AFTER_S:
                hinted = self._hint_if_unclaimed(root)
            time.sleep(_pause(family) if drive else POLL_S)

    def _report(self, family: list[Execution]) -> None:
        labels = {m.pk: (f" <{m.branch}>" if m.parent_id else "") for m in family}
        steps = Step.objects.filter(execution_id__in=labels).order_by("started_at", "seq")
        for step in steps:
            key = (step.execution_id, step.seq)
            if self.printed.get(key) != step.status:
                self.printed[key] = step.status
                self._say(_step_line(step, labels[step.execution_id]))
        root = family[0]
        if root.status != self.status:
            self.status = root.status
            self._say(f"  -> {root.status}")

    def _hint_if_unclaimed(self, execution: Execution) -> bool:
        if execution.status == ExecutionStatus.PENDING:
            self.command.stderr.write(
                "still PENDING: is a worker running (manage.py qcluster and manage.py trama_timers)? "
                "--drive runs it in this process instead."
            )
        return True

    def _say(self, line: str) -> None:
        if not self.quiet:
            self.command.stdout.write(line)


def _family(execution_id) -> list[Execution]:
    """The execution first, then the branches its parallel nodes forked (and theirs), with the database clock."""
    query = Execution.objects.annotate(db_now=Now()).only("pk", "status", "due_at", "parent_id", "branch")
    return [query.get(pk=execution_id), *query.branches_under([execution_id])]


def _due(execution: Execution) -> bool:
    return execution.due_at is not None and execution.due_at <= execution.db_now


def _pause(family: list[Execution]) -> float:
    """Sleep until the next member is due (a sleep node, a back-off), but look again at least every POLL_S."""
    waits = [(m.due_at - m.db_now).total_seconds() for m in family if m.due_at is not None]
    return max(0.01, min([POLL_S, *waits]))


def _step_line(step: Step, label: str = "") -> str:
    response = f" HTTP {step.response_status}" if step.response_status is not None else ""
    took = _took(step.started_at, step.finished_at)
    message = step.error.get("message") if isinstance(step.error, dict) else None
    error = f" {message}" if message and message != f"HTTP {step.response_status}" else ""
    phase = "" if step.phase == "forward" else f" [{step.phase}]"
    return f"  {step.seq:>3}{label} {step.node_id}{phase} #{step.attempt} {step.status}{response}{took}{error}"


def _took(started: datetime | None, finished: datetime | None) -> str:
    if started is None or finished is None:
        return f" (since {timezone.localtime(started).strftime('%H:%M:%S')})" if started else ""
    return f" ({(finished - started).total_seconds() * 1000:.0f} ms)"
