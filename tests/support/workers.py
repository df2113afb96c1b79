"""Real worker processes for tests: ``manage.py qcluster`` and ``manage.py trama_timers``.

Each process runs in its own session (process group), so ``kill`` reaches the
children qcluster forks. The processes use the database the test process uses
(the pytest-django test database), so tests that start them need committed
rows: use ``transactional_db`` (the ``worker_pool`` fixture does).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

REPO_ROOT = Path(__file__).resolve().parents[2]


def database_url(alias: str = "default") -> str:
    """A DATABASE_URL for the database Django is connected to right now (the test database under pytest)."""
    from django.db import connections

    settings_dict = connections[alias].settings_dict
    engine = settings_dict["ENGINE"]
    if "postgresql" not in engine:
        raise RuntimeError(f"worker processes need a shared PostgreSQL database; this run uses {engine}")
    user = quote(settings_dict.get("USER") or "", safe="")
    password = settings_dict.get("PASSWORD") or ""
    auth = f"{user}:{quote(password, safe='')}@" if password else (f"{user}@" if user else "")
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or "5432"
    return f"postgres://{auth}{host}:{port}/{quote(settings_dict['NAME'], safe='')}"


def ping_task(path: str, text: str = "") -> str:
    """A tiny task for proving workers run: appends "<text> <pid> <process group>" to ``path``."""
    line = f"{text} {os.getpid()} {os.getpgid(0)}\n"
    with open(path, "a") as handle:
        handle.write(line)
    return line


@dataclass
class WorkerProcess:
    name: str
    args: list[str]
    proc: subprocess.Popen
    stdout_path: Path
    stderr_path: Path


class WorkerPool:
    """Starts and stops real worker processes against the test database.

    ``env`` holds overrides for every process; ``start_worker(**env)`` / ``start_timers(**env)``
    add per-process ones (values are turned into strings). ``DATABASE_URL`` points at the test
    database, ``TRAMA_SECRET_KEY`` is the test process's SECRET_KEY (so callback tokens verify
    across processes), and ``TRAMA_EGRESS_ALLOW`` defaults to ``127.0.0.1`` unless set.
    """

    def __init__(self, env: dict[str, object] | None = None, log_dir: str | Path | None = None):
        self.log_dir = Path(log_dir) if log_dir else Path(tempfile.mkdtemp(prefix="trama-workers-"))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.env = dict(env or {})
        self.processes: list[WorkerProcess] = []

    # --- starting -----------------------------------------------------------
    def base_env(self) -> dict[str, str]:
        from django.conf import settings

        env = dict(os.environ)
        env.setdefault("TRAMA_EGRESS_ALLOW", "127.0.0.1")
        env.update(
            {
                "DATABASE_URL": database_url(),
                "TRAMA_SECRET_KEY": str(settings.SECRET_KEY),
                "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "trama_project.settings"),
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update({k: str(v) for k, v in self.env.items()})
        return env

    def start(self, command: str, *extra_args: str, **env: object) -> subprocess.Popen:
        """Start ``manage.py <command> [extra_args]`` in its own process group; return the Popen."""
        return self.spawn(command, [sys.executable, "manage.py", command, *extra_args], **env)

    def start_gunicorn(self, port: int, *extra_args: str, **env: object) -> subprocess.Popen:
        """The web process as deploy/Procfile runs it (gunicorn with deploy/gunicorn.conf.py) on 127.0.0.1:``port``."""
        args = [sys.executable, "-m", "gunicorn", "trama_project.wsgi", "-c", "deploy/gunicorn.conf.py"]
        return self.spawn("gunicorn", [*args, "--bind", f"127.0.0.1:{port}", *extra_args], **env)

    def spawn(self, label: str, args: list[str], **env: object) -> subprocess.Popen:
        """Run ``args`` from the repository root in its own process group, output to files; return the Popen."""
        full_env = self.base_env()
        full_env.update({k: str(v) for k, v in env.items()})
        name = f"{label}-{len(self.processes) + 1}"
        stdout_path = self.log_dir / f"{name}.out"
        stderr_path = self.log_dir / f"{name}.err"
        with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
            proc = subprocess.Popen(
                args,
                cwd=REPO_ROOT,
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        self.processes.append(WorkerProcess(name, args, proc, stdout_path, stderr_path))
        return proc

    def start_worker(self, **env: object) -> subprocess.Popen:
        """Start a django-q cluster (``manage.py qcluster``)."""
        return self.start("qcluster", **env)

    def start_timers(self, **env: object) -> subprocess.Popen:
        """Start the engine's timer/reconciler loop (``manage.py trama_timers``)."""
        return self.start("trama_timers", **env)

    # --- stopping -------------------------------------------------------------
    @staticmethod
    def _signal_group(proc: subprocess.Popen, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)

    def kill(self, proc: subprocess.Popen, sig: int = signal.SIGKILL, wait: float = 10.0) -> int | None:
        """Send ``sig`` to the process's whole group (qcluster's forked children too).

        With SIGKILL (or any ``wait`` > 0) waits for the leader to exit and returns its exit code.
        """
        self._signal_group(proc, sig)
        if wait > 0:
            with contextlib.suppress(subprocess.TimeoutExpired):
                return proc.wait(timeout=wait)
        return proc.poll()

    def stop_all(self, timeout: float = 10.0) -> None:
        """SIGTERM every process, wait up to ``timeout``, then SIGKILL every process group.

        SIGTERM goes to the group leader only: qcluster shuts its children down itself, and
        hangs when they get the SIGTERM directly too. The SIGKILL reaches the whole group.
        """
        for worker in self.processes:
            if worker.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for worker in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        for worker in self.processes:
            # Also reaches children left behind by a leader that already exited.
            self._signal_group(worker.proc, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.proc.wait(timeout=5)

    # --- diagnostics ----------------------------------------------------------
    def alive(self) -> list[subprocess.Popen]:
        return [w.proc for w in self.processes if w.proc.poll() is None]

    def logs(self, tail_chars: int = 20_000) -> str:
        """Every process's command, pid, exit code, stdout and stderr (each cut to its last ``tail_chars``)."""
        parts = []
        for worker in self.processes:
            parts.append(f"===== {worker.name} pid={worker.proc.pid} exit={worker.proc.poll()} {' '.join(worker.args)}")
            for label, path in (("stdout", worker.stdout_path), ("stderr", worker.stderr_path)):
                try:
                    text = path.read_text(errors="replace")
                except OSError as exc:
                    text = f"<unreadable: {exc}>"
                if len(text) > tail_chars:
                    text = "...\n" + text[-tail_chars:]
                parts.append(f"----- {label} ({path})\n{text}")
        return "\n".join(parts)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc) -> None:
        self.stop_all()
