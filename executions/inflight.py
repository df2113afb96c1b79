"""Many executions in flight per worker process.

django-q2 hands a worker process one task at a time. Trama's work is mostly
waiting on users' services, so a task that walked its execution itself would
hold the whole process idle for the length of every call. Instead the task
hands the execution to one of this process's threads and returns, and the
process takes its next task while earlier executions wait on their services.

Back-pressure: a process holds at most ``TRAMA_WORKER_CONCURRENCY``
executions. When every slot is taken, ``submit`` blocks until one frees, so
this process takes nothing more from the queue and other processes get it.

Threads rather than an event loop: the engine (claim, decide, fenced write)
is synchronous Django code, calls are blocking sockets that release the GIL,
and a thread that waits costs no CPU (docs/engine.md, "Concurrency").

A thread holds a database connection only around a write (Django's psycopg
pool, see settings), never while a call is in flight, so database
connections stay bounded whatever the concurrency.

Nothing is lost when the process dies: each execution's row carries its
lease, which lapses; the timer loop then enqueues it for another worker. When
the process stops cleanly (django-q recycles it or the cluster stops), the
executions in flight finish first: ``drain`` runs among multiprocessing's exit
finalizers, ahead of the one that flushes this process's spans
(executions/tracing.py), which would otherwise run before Python joins these threads.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from multiprocessing import util as multiprocessing_util

from django.conf import settings
from django.db import connections

from executions import heartbeat
from executions.services import advance_execution

logger = logging.getLogger("trama.executions")


class InFlight:
    """A bounded set of threads, each advancing one execution at a time."""

    def __init__(self, size: int):
        self.size = size
        self._slots = threading.BoundedSemaphore(size)
        self._executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="trama-execution")
        self._lock = threading.Lock()
        self.running = 0

    def submit(self, execution_id: str) -> None:
        """Advance ``execution_id`` in a thread; blocks while ``size`` executions are in flight."""
        self._slots.acquire()
        with self._lock:
            self.running += 1
        self._executor.submit(self._advance, execution_id)

    def _advance(self, execution_id: str) -> None:
        try:
            advance_execution(execution_id)
        except Exception:
            # The row stays leased and due: the execution is taken up again once the lease lapses.
            logger.exception("advancing the execution failed", extra={"execution_id": execution_id})
        finally:
            connections.close_all()  # back to the pool (PostgreSQL) or closed (SQLite): a thread keeps none
            with self._lock:
                self.running -= 1
            self._slots.release()

    def drain(self) -> None:
        """Wait for every execution in flight to finish; the threads then end."""
        self._executor.shutdown(wait=True)


DRAIN_PRIORITY = 20  # above executions.tracing.FLUSH_PRIORITY (and the last heartbeat, DRAIN_PRIORITY - 1)
_pool: InFlight | None = None
_pool_pid: int | None = None
_pool_lock = threading.Lock()


def in_flight() -> InFlight:
    """This process's threads (created on first use, so each forked worker process has its own)."""
    global _pool, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool, _pool_pid = InFlight(settings.TRAMA_WORKER_CONCURRENCY), os.getpid()
            # A django-q worker process ends with os._exit(), after multiprocessing's finalizers
            # (highest priority first) and before any atexit hook: drain there, then spans are flushed.
            multiprocessing_util.Finalize(_pool, _pool.drain, exitpriority=DRAIN_PRIORITY)
            _report_health(_pool)
        return _pool


def _report_health(pool: InFlight) -> None:
    """This process's health on /metrics (executions/heartbeat.py), written last once the pool has drained."""

    def gauges() -> dict:
        return {"in_flight": pool.running, "capacity": pool.size}

    heartbeat.start("worker", gauges)
    multiprocessing_util.Finalize(pool, heartbeat.stop, args=("worker", gauges), exitpriority=DRAIN_PRIORITY - 1)
