"""django-q2's ORM broker, woken by PostgreSQL instead of polling for tasks.

django-q's ORM broker looks for tasks every ``poll`` seconds. Polled often, an
idle cluster costs ~20 queries a second and a few per cent of a core; polled
rarely, every task waits up to ``poll`` before a worker takes it. On
PostgreSQL this broker does neither:

- ``enqueue`` also sends ``NOTIFY trama_queue``. PostgreSQL delivers it when
  the enqueuing transaction commits, so a pusher is never woken before the
  task row is visible.
- An idle pusher blocks on ``LISTEN trama_queue`` until a task arrives, or for
  at most ``TRAMA_QUEUE_IDLE_SECONDS`` (the net under a notification missed
  while its listening connection was being reopened, and under tasks whose
  lock lapsed after a cluster died holding them).
- Taking tasks is one statement (``FOR UPDATE SKIP LOCKED``) instead of django-q's
  SELECT plus one UPDATE per task; two clusters never take the same task.

The queue stays a wake-up signal only (docs/architecture.md): a lost
notification delays a task by at most ``TRAMA_QUEUE_IDLE_SECONDS``, and the
timer loop re-enqueues anything that stays due. On other databases (SQLite)
it is django-q's ORM broker unchanged.
"""

from __future__ import annotations

import os
import time

import psycopg
from django import db
from django.conf import settings
from django.utils import timezone
from django_q.brokers.orm import ORM
from django_q.conf import Conf
from django_q.models import OrmQ

CHANNEL = "trama_queue"


class ListeningORM(ORM):
    """The ORM broker with NOTIFY on enqueue and LISTEN while idle (PostgreSQL)."""

    _listener: psycopg.Connection | None = None
    _listener_pid: int | None = None

    def enqueue(self, task) -> int:
        task_id = super().enqueue(task)
        connection = db.connections[Conf.ORM]
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_notify(%s, '')", [CHANNEL])
        return task_id

    def dequeue(self) -> list[tuple[int, str]] | None:
        if db.connections[Conf.ORM].vendor != "postgresql":
            return super().dequeue()
        tasks = self._take()
        if not tasks:
            self._wait_for_task(settings.TRAMA_QUEUE_IDLE_SECONDS)
        return tasks or None

    def _take(self) -> list[tuple[int, str]]:
        """Lock up to ``bulk`` due tasks for this cluster (until the task retry time) in one statement."""
        db.close_old_connections()  # as django-q's broker does: the pusher's connection may have gone stale
        table = OrmQ._meta.db_table
        now = timezone.now()
        with db.connections[Conf.ORM].cursor() as cursor:
            cursor.execute(
                f"""UPDATE {table} SET lock = %s WHERE id IN (
                        SELECT id FROM {table} WHERE key = %s AND lock < %s
                        ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED)
                    RETURNING id, payload""",
                [self.timeout(None), self.list_key, now, Conf.BULK],  # django-q's lock: now + its retry time
            )
            return sorted(cursor.fetchall())

    def _wait_for_task(self, timeout: float) -> None:
        """Block until a task is enqueued anywhere, or ``timeout`` seconds pass."""
        try:
            for _ in self._listening_connection().notifies(timeout=timeout, stop_after=1):
                pass
        except psycopg.Error:
            # Reopened on the next wait; until then behave like the polling broker.
            self._close_listener()
            db.close_old_connections()
            time.sleep(Conf.POLL)

    def _listening_connection(self) -> psycopg.Connection:
        if self._listener is None or self._listener_pid != os.getpid() or self._listener.closed:
            params = db.connections[Conf.ORM].get_connection_params()
            params = {k: v for k, v in params.items() if k not in ("context", "cursor_factory", "prepare_threshold")}
            listener = psycopg.connect(**params, autocommit=True)
            listener.execute(f"LISTEN {CHANNEL}")
            self._listener, self._listener_pid = listener, os.getpid()
        return self._listener

    def _close_listener(self) -> None:
        if self._listener is not None and self._listener_pid == os.getpid():
            self._listener.close()
        self._listener = None
