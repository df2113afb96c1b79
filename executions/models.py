import uuid
from collections.abc import Iterable

from django.db import models
from django.db.models import Q
from django.utils import timezone

from definitions.models import Definition
from executions.choices import (  # noqa: F401 (re-exported: the models' callers import them from here)
    ACTIVE_STATUSES,
    FINAL_STATUSES,
    WAITING_STATUSES,
    ExecutionStatus,
    StepStatus,
)
from executions.choices import Phase as StepPhase


class ExecutionQuerySet(models.QuerySet):
    def branches_under(self, roots: Iterable) -> list["Execution"]:
        """Every branch execution forked under the executions ``roots`` (ids), nested forks included.

        Level by level, parents first, each level in this queryset's order (and with its
        annotations and ``only``): one query per level of nesting.
        """
        found: list[Execution] = []
        frontier = list(roots)
        while frontier:
            level = list(self.filter(parent_id__in=frontier))
            found += level
            frontier = [branch.pk for branch in level]
        return found

    def family_ids(self, roots: Iterable) -> list:
        """``roots`` (ids) and the ids of every branch execution under them: all the rows their history spans."""
        roots = list(roots)
        return [*roots, *(branch.pk for branch in self.only("pk").branches_under(roots))]


class Execution(models.Model):
    """One run of one pinned definition version.

    ``state`` is the state machine's working memory (see executions/machine/);
    ``status``, ``current_node``, ``output`` and ``error`` mirror it as columns
    for filtering. Only executions/services/ writes these fields, always as a
    conditional update fenced on ``fence`` (bumped by every claim), so a worker
    that lost its claim cannot overwrite its successor.

    ``due_at`` is when somebody must look at the execution next: now for a
    runnable one, the lease end while a worker holds it, the wake-up time while
    sleeping, the callback deadline while waiting, NULL once final. The timer
    loop enqueues rows whose ``due_at`` has passed, which covers timers, dead
    workers and a lost queue alike.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No index of its own: execution_definition_created (definition, -created_at) serves every lookup by definition.
    definition = models.ForeignKey(Definition, on_delete=models.PROTECT, related_name="executions", db_index=False)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="branches", db_index=False,
        help_text="For one branch of a parallel node: the execution that forked it.",
    )  # fmt: skip
    branch = models.CharField(max_length=64, blank=True, help_text="The branch's first node, for a branch execution.")
    status = models.CharField(max_length=12, choices=ExecutionStatus.choices, default=ExecutionStatus.PENDING.value)
    input = models.JSONField(default=dict)
    output = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    current_node = models.CharField(max_length=64, null=True, blank=True)
    state = models.JSONField(default=dict)
    fence = models.BigIntegerField(default=0, help_text="Bumped by every claim; every write checks it.")
    lease_until = models.DateTimeField(null=True, blank=True, help_text="Set while a worker holds the execution.")
    due_at = models.DateTimeField(null=True, blank=True)
    nudged_at = models.DateTimeField(null=True, blank=True, help_text="When the timer loop last enqueued it.")
    cancel_request = models.JSONField(
        null=True, blank=True, help_text="A cancel that arrived while a worker held the execution."
    )
    pending_callback = models.JSONField(
        null=True, blank=True, help_text="A callback that arrived while its request was still being sent."
    )
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)
    request_digest = models.CharField(max_length=64, blank=True)
    created_by = models.CharField(max_length=150, blank=True)
    trace_parent = models.CharField(
        max_length=55, blank=True, default="", db_default="",
        help_text="W3C traceparent of the span the execution's root span is a child of: the caller's "
        "(a start request's traceparent header) or the parent execution's root span (a branch).",
    )  # fmt: skip
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ExecutionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "-created_at"], name="execution_status_created"),
            models.Index(fields=["definition", "-created_at"], name="execution_definition_created"),
            models.Index(fields=["-created_at"], name="execution_created"),
            # The timer loop reads only due rows through this partial index.
            models.Index(fields=["due_at"], condition=Q(due_at__isnull=False), name="execution_due"),
            # Partial: most executions are no branch and carry no key, and need no index entry for it.
            models.Index(fields=["parent"], condition=Q(parent__isnull=False), name="execution_parent"),
            # The UI's executions list: root executions newest first, keyset-paged on (created_at, id).
            models.Index(
                fields=["-created_at", "-id"], condition=Q(parent__isnull=True), name="execution_root_created"
            ),
            # (A GIN index on input, PostgreSQL only, comes from migration 0007: SQLite has no GIN.)
            # /metrics reads only the executions finished since its last fold (executions/tallies.py).
            models.Index(fields=["finished_at"], condition=Q(finished_at__isnull=False), name="execution_finished"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["idempotency_key"], condition=Q(idempotency_key__isnull=False), name="execution_idempotency_key"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.id} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


class Step(models.Model):
    """One attempt of one node, forward, compensation or notify: the durable history.

    ``seq`` orders the steps of an execution and is allocated by the state
    machine, so a step can be updated later (a wait or a sleep that ends)
    without knowing its database id. ``request`` is stored rendered with
    secrets masked.
    """

    # No index of its own: the (execution, seq) unique constraint's index serves every lookup by execution.
    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="steps", db_index=False)
    seq = models.PositiveIntegerField()
    node_id = models.CharField(max_length=64)
    node_type = models.CharField(max_length=20)
    phase = models.CharField(max_length=12, choices=StepPhase.choices, default=StepPhase.FORWARD.value)
    attempt = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=12, choices=StepStatus.choices)
    request = models.JSONField(null=True, blank=True)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_headers = models.JSONField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    detail = models.JSONField(null=True, blank=True, help_text="Switch decision, callback body, sleep target…")
    error = models.JSONField(null=True, blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["execution", "seq"]
        constraints = [models.UniqueConstraint(fields=["execution", "seq"], name="step_execution_seq_unique")]
        # /metrics reads only the steps finished since its last fold (executions/tallies.py).
        indexes = [models.Index(fields=["finished_at"], condition=Q(finished_at__isnull=False), name="step_finished")]

    def __str__(self) -> str:
        return f"{self.node_id}#{self.attempt} {self.phase} {self.status}"


class OperatorActionKind(models.TextChoices):
    CANCEL = "cancel", "cancel"
    RETRY = "retry", "retry"
    RETRY_SKIP = "retry_skip", "retry skipping the failed compensation"
    WAKE = "wake", "wake"
    RERUN = "rerun", "re-run"
    COMPLETE_CALLBACK = "complete_callback", "complete the callback by hand"


class OperatorAction(models.Model):
    """Something a person (or an API token) did to an execution: who, when, what.

    Written by executions/services/ in the transaction that applies the action,
    so the trace exists exactly when the action took effect. The engine's own
    moves are not recorded here (the steps are their history); only actions
    from outside: the API, the admin and the UI pages.
    """

    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="operator_actions", db_index=False)
    kind = models.CharField(max_length=20, choices=OperatorActionKind.choices)
    actor = models.CharField(max_length=150, help_text="The user name, or token:<name> for an API token.")
    at = models.DateTimeField(default=timezone.now)
    detail = models.JSONField(default=dict, blank=True, help_text="The action's options: compensate, outcome, body…")

    class Meta:
        ordering = ["execution", "at"]
        indexes = [models.Index(fields=["execution", "at"], name="operator_action_execution_at")]
        permissions = [("act_on_execution", "Can cancel, retry, wake, re-run and complete executions in the UI")]

    def __str__(self) -> str:
        return f"{self.kind} by {self.actor} at {self.at:%Y-%m-%d %H:%M:%S}"


class MetricTally(models.Model):
    """Running totals behind the ``trama_*`` counters and histograms, folded in by /metrics.

    ``key`` is a JSON list: the family and its labels, or ``["watermark"]``,
    whose ``values`` say up to which ``finished_at`` steps and executions have
    been added. A scrape adds the rows finished after the watermark to these
    totals, so its cost follows the recent rows, not the whole history, and
    pruning old rows no longer lowers the counters (executions/tallies.py).
    """

    key = models.CharField(max_length=400, primary_key=True)
    values = models.JSONField(default=dict)

    def __str__(self) -> str:
        return self.key


class WorkerHeartbeat(models.Model):
    """The health a worker process or timer loop last reported (executions/heartbeat.py).

    ``values`` holds its counters, gauges and schedule-to-start histogram as
    executions.telemetry.ProcessStats snapshots them; /metrics shows the rows
    written within three heartbeat intervals, one series per process.
    """

    process = models.CharField(max_length=200, primary_key=True, help_text="host:pid")
    role = models.CharField(max_length=20)
    values = models.JSONField(default=dict)
    updated_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.role} {self.process}"
