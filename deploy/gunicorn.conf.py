"""gunicorn settings for Trama's web process (deploy/Procfile: ``gunicorn -c deploy/gunicorn.conf.py``).

* /metrics adds up every worker process: prometheus_client's multiprocess mode, in a
  directory made for this start (or PROMETHEUS_MULTIPROC_DIR, emptied first), set
  before any worker imports the app; a dead worker's live gauges are dropped.
* Spans a worker still buffers are exported before it exits (recycle, stop, SIGTERM).
* Access and error lines never carry a callback token, and are JSON when
  TRAMA_LOG_FORMAT=json (trama_project/gunicorn_logging.py).

Command-line flags still override everything here (gunicorn reads this file first).
"""

import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # trama_project, whatever the cwd

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = 8
timeout = 60
accesslog = "-"
logger_class = "trama_project.gunicorn_logging.Logger"
# gunicorn 27's control socket sits at one path per user (~/.gunicorn/gunicorn.ctl): two web processes on a
# host would fight over it, and Trama has no use for it.
control_socket_disable = True


def _multiprocess_dir() -> tuple[str, bool]:
    """The metrics directory and whether this start made it (then it is removed at exit)."""
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not given:
        return tempfile.mkdtemp(prefix="trama-prometheus-"), True
    path = Path(given)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):  # counters of an earlier start would be added to this one's
        stale.unlink()
    return given, False


_metrics_dir, _made_here = _multiprocess_dir()
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir


def child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, _metrics_dir)


def worker_exit(server, worker) -> None:
    from opentelemetry import trace

    flush = getattr(trace.get_tracer_provider(), "force_flush", None)
    if flush is not None:
        flush()


def on_exit(server) -> None:
    if _made_here:
        shutil.rmtree(_metrics_dir, ignore_errors=True)
