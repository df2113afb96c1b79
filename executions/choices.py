"""Every status and phase of an execution and its steps, with the named sets: the one home.

Django-free on purpose: the state machine (executions/machine/, which imports no
Django) and the models both read these. The enums are ``StrEnum``s, so a member
is its string everywhere (JSON state, queries, templates); ``Choices`` gives them
the ``choices`` / ``values`` / ``labels`` that Django's ``TextChoices`` has, with
the same labels, so the model fields' choices are unchanged.
"""

from __future__ import annotations

from enum import EnumMeta, StrEnum
from typing import Any


class _ChoicesMeta(EnumMeta):
    def _members(cls) -> list[Any]:
        return list(cls.__members__.values())

    @property
    def choices(cls) -> list[tuple[str, str]]:
        return [(member.value, member.label) for member in cls._members()]

    @property
    def values(cls) -> list[str]:
        return [member.value for member in cls._members()]

    @property
    def labels(cls) -> list[str]:
        return [member.label for member in cls._members()]


class Choices(StrEnum, metaclass=_ChoicesMeta):
    """A ``StrEnum`` usable as a model field's choices (labelled like Django's TextChoices)."""

    @property
    def label(self) -> str:
        return self.name.replace("_", " ").title()


class ExecutionStatus(Choices):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    WAITING = "WAITING"
    SLEEPING = "SLEEPING"
    COMPENSATING = "COMPENSATING"
    SUCCEEDED = "SUCCEEDED"
    COMPENSATED = "COMPENSATED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


# An execution in one of these never changes again (except a FAILED one an operator retries).
FINAL_STATUSES = frozenset(
    {ExecutionStatus.SUCCEEDED, ExecutionStatus.COMPENSATED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED}
)
ACTIVE_STATUSES = frozenset(set(ExecutionStatus) - FINAL_STATUSES)
# Paused until a time (``due_at``): a callback or its deadline, a sleep or a back-off, a parallel join.
WAITING_STATUSES = frozenset({ExecutionStatus.WAITING, ExecutionStatus.SLEEPING})
# Not paused and not final: a worker walks it (forward, or undoing).
WORKING_STATUSES = frozenset({ExecutionStatus.RUNNING, ExecutionStatus.COMPENSATING})


class Phase(Choices):
    """Which path a step, or the execution's current position, is on."""

    FORWARD = "forward"
    COMPENSATION = "compensation"
    NOTIFY = "notify"


class StepStatus(Choices):
    """A step's status. A wait or a sleep is written while it lasts, then closed with its outcome.

    No "skipped": the machine never skips a node without a step of its own. A compensation
    an operator skips (``retry {"skip": true}``) keeps its failed step, and no new one is
    written for it: the history shows what ran, not what did not.
    """

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    WAITING = "waiting"
    SLEEPING = "sleeping"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"


def page_statuses() -> dict:
    """The statuses and sets the UI's page scripts read (through ``json_script``), so they keep no copy."""
    return {
        "execution": ExecutionStatus.values,
        "final": sorted(FINAL_STATUSES),
        "active": sorted(ACTIVE_STATUSES),
        "waiting": sorted(WAITING_STATUSES),
        "step": StepStatus.values,
    }
