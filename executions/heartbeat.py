"""Each worker process and timer loop writes its health to the database; /metrics reads it back.

The counts live in the process (executions.telemetry.stats) and reach the
``worker_heartbeat`` table every TRAMA_HEARTBEAT_SECONDS from a daemon thread,
never from the step path: one upsert per process per interval, whatever the
load. Like the other ``trama_*`` families this needs no shared directory, so a
worker on any machine is counted. A process that stops writes a last time
(``stop``, in multiprocessing's exit finalizers for django-q's processes); one
that dies is seen as gone once its row is older than three intervals.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable

from django.conf import settings
from django.db import connections
from django.db.models.functions import Now

from executions import telemetry
from executions.models import WorkerHeartbeat

_log = logging.getLogger("trama.telemetry")
_started_pid: int | None = None
_lock = threading.Lock()
_stop = threading.Event()


def start(role: str, gauges: Callable[[], dict] | None = None) -> None:
    """Publish this process's stats every TRAMA_HEARTBEAT_SECONDS (once per process; ``gauges`` adds live values)."""
    global _started_pid, _stop
    with _lock:
        if _started_pid == os.getpid():
            return
        _started_pid, _stop = os.getpid(), threading.Event()
    publish(role, gauges)
    threading.Thread(target=_loop, args=(role, gauges, _stop), name="trama-heartbeat", daemon=True).start()


def stop(role: str, gauges: Callable[[], dict] | None = None) -> None:
    """The process is ending: write the final counts (the thread is a daemon and would die mid-interval)."""
    _stop.set()
    publish(role, gauges)


def _loop(role: str, gauges: Callable[[], dict] | None, stopping: threading.Event) -> None:
    while not stopping.wait(settings.TRAMA_HEARTBEAT_SECONDS):
        publish(role, gauges)


def publish(role: str, gauges: Callable[[], dict] | None = None) -> None:
    """One upsert of this process's counts; a database error is logged and the next beat tries again."""
    values = telemetry.stats.snapshot()
    values["gauges"] |= gauges() if gauges else {}
    try:
        WorkerHeartbeat.objects.update_or_create(
            process=process_name(), defaults={"role": role, "values": values, "updated_at": Now()}
        )
    except Exception as exc:  # health reporting must never take a worker down
        _log.warning("heartbeat not written: %s", exc)
    finally:
        connections.close_all()  # back to the pool: this thread holds no connection between beats


def process_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"
