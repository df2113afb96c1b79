"""`make run`: web server, worker cluster and timer loop together, stopped together on Ctrl-C."""

import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand

from trama_project.models import ApiToken


class Command(BaseCommand):
    help = "Run Trama for local use: runserver + qcluster + trama_timers in one terminal."

    def add_arguments(self, parser):
        parser.add_argument("--addr", default="127.0.0.1:8000")

    def handle(self, *args, addr: str, **options):
        self._print_welcome(addr)
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        # Own sessions: Ctrl-C reaches only this process, which stops each child exactly once
        # (qcluster hangs when it gets SIGINT from the terminal and again from us).
        processes = [
            subprocess.Popen([*manage, "runserver", "--noreload", addr], start_new_session=True),
            subprocess.Popen([*manage, "qcluster"], start_new_session=True),
            subprocess.Popen([*manage, "trama_timers"], start_new_session=True),
        ]
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        try:
            while all(p.poll() is None for p in processes):
                time.sleep(0.5)
            self.stderr.write("A Trama process exited; stopping the others.")
        except KeyboardInterrupt:
            self.stdout.write("\nStopping Trama…")
        finally:
            self._stop(processes)

    def _print_welcome(self, addr: str) -> None:
        base = f"http://{addr}"
        self.stdout.write(f"Trama is starting (database: {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]})")
        self.stdout.write(f"  API docs : {base}/api/docs/")
        self.stdout.write(f"  Admin    : {base}/admin/   (create a login: .venv/bin/python manage.py createsuperuser)")
        self.stdout.write(f"  Editor   : {base}/ui/editor/")
        if not ApiToken.objects.active().exists():
            _, raw = ApiToken.mint("local-dev")
            self.stdout.write(f"  API token: {raw}   (created now for local use; shown once)")
        self.stdout.write("Press Ctrl-C to stop.")

    @staticmethod
    def _stop(processes: list[subprocess.Popen]) -> None:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for process in processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
