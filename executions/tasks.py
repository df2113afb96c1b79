"""django-q2 task entry points. Tasks take ids, reload, re-check: delivery is at least once."""

from django.dispatch import receiver
from django_q.signals import post_spawn

from executions.inflight import in_flight


def advance(*execution_ids: str) -> None:
    """Hand each execution to one of this process's threads (blocks while they are all busy)."""
    for execution_id in execution_ids:
        in_flight().submit(execution_id)


@receiver(post_spawn)
def _start_in_flight(**_) -> None:
    """A new django-q worker process makes its pool at once, so it reports its health (and capacity) idle too."""
    in_flight()
