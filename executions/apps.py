import os

from django.apps import AppConfig
from django.db import connections


class ExecutionsConfig(AppConfig):
    name = "executions"

    def ready(self) -> None:
        import executions.tasks  # noqa: F401  (its post_spawn receiver: a worker process reports from its start)
        from executions import metrics, tracing

        metrics.install()  # the trama_* /metrics collector
        tracing.configure_from_env()  # the OpenTelemetry SDK, from OTEL_* (executions/tracing.py)
        os.register_at_fork(after_in_child=forget_inherited_connections)


def forget_inherited_connections() -> None:
    """In a forked child (django-q's workers, pusher and monitor; gunicorn's workers), drop the
    parent's database connections and pools without closing them.

    Their sockets are shared with the parent: using or closing them from the
    child would corrupt the parent's sessions. The child opens its own.
    """
    from django.db.backends.postgresql.base import DatabaseWrapper

    DatabaseWrapper._connection_pools.clear()
    for wrapper in connections.all(initialized_only=True):
        wrapper.connection = None
