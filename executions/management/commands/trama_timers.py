"""The timer loop: enqueues executions whose due time has passed.

Sleeps ending, retry back-offs, callback deadlines, dead workers' leases and
executions stranded by a lost queue all surface here as a passed ``due_at``.
Run one or more next to the qcluster workers.
"""

import signal
import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections

from executions import heartbeat
from executions.services import enqueue_due_executions


class Command(BaseCommand):
    help = "Enqueue executions whose due time has passed (timers, retries, timeouts, recovery)."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Run one pass and exit.")

    def handle(self, *args, once: bool = False, **options):
        self._stopping = False
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        heartbeat.start("timer")
        try:
            self._loop(once)
        finally:
            heartbeat.stop("timer")

    def _loop(self, once: bool) -> None:
        while not self._stopping:
            try:
                count = enqueue_due_executions()
            except Exception:  # a database blip must not end the loop; it is logged and retried
                self.stderr.write("timer pass failed; retrying")
                close_old_connections()
                count = 0
            if once:
                return
            if count == 0:
                time.sleep(settings.TRAMA_TIMER_POLL_SECONDS)

    def _stop(self, *_):
        self._stopping = True
