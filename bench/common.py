"""Shared pieces of the benchmarks: a fresh database, Trama's processes, a fast service.

Benchmarks print numbers; nothing here asserts timings.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fresh_database(name: str) -> str:
    """Drop and create ``name`` on the benchmark PostgreSQL, migrate it, return its URL."""
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{PG}/{name}"
    subprocess.run(
        [PYTHON, "manage.py", "migrate", "-v0"], cwd=REPO, env=os.environ | {"DATABASE_URL": url}, check=True
    )
    return url


def setup_django(database_url: str, **env: str) -> None:
    os.environ.update({"DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "trama_project.settings", **env})
    sys.path.insert(0, str(REPO))
    import django

    django.setup()


class Processes:
    """Trama's own processes (web, workers, timers), each in its own process group."""

    def __init__(self, env: dict[str, str]):
        self.env = os.environ | env
        self.procs: list[subprocess.Popen] = []

    def start(self, *args: str) -> subprocess.Popen:
        proc = subprocess.Popen(
            [PYTHON, "manage.py", *args], cwd=REPO, env=self.env, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.procs.append(proc)
        return proc

    def start_web(self, port: int, workers: int = 2) -> subprocess.Popen:
        """The production web server: gunicorn, threaded workers (keep-alive, TCP_NODELAY)."""
        gunicorn = str(Path(PYTHON).with_name("gunicorn"))
        proc = subprocess.Popen(
            [gunicorn, "trama_project.wsgi", "-b", f"127.0.0.1:{port}", "-w", str(workers), "-k", "gthread",
             "--threads", "8", "--log-level", "warning"],
            cwd=REPO, env=self.env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.procs.append(proc)
        return proc

    def cpu_seconds(self) -> float:
        """User+system CPU of every live process in our groups (children included), from /proc."""
        total = 0.0
        tick = os.sysconf("SC_CLK_TCK")
        groups = {proc.pid for proc in self.procs}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) in groups:  # field 5 (pgrp) after the ")"-split offset
                total += (int(fields[11]) + int(fields[12])) / tick
        return total

    def stop(self) -> None:
        for proc in self.procs:
            with _quiet():
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with _quiet():
                    os.killpg(proc.pid, signal.SIGKILL)


class _quiet:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return exc[0] is not None and issubclass(exc[0], ProcessLookupError | OSError)


class FastService:
    """A minimal HTTP/1.1 keep-alive service with TCP_NODELAY; ``handler(method, path, headers, body)``
    returns (status, body dict)."""

    def __init__(self, handler: Callable[[str, str, dict, bytes], tuple[int, dict]]):
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def setup(self):
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _any(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, payload = outer.handler(self.command, self.path, dict(self.headers), body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _any

        self.handler = handler
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()


def wait_http(url: str, timeout: float = 30.0) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def percentiles(values: list[float], points=(50, 95, 99)) -> dict[int, float]:
    ordered = sorted(values)
    return {p: ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] for p in points}


# --- Helpers shared by the suite (bench/run_all.py and its scenarios) -------------------------

# Every Trama process of a benchmark shares these: a fixed key (callback tokens verify across
# processes), loopback egress allowed (the fast service is on 127.0.0.1).
BENCH_ENV = {"TRAMA_SECRET_KEY": "trama-bench-secret-key-not-for-production", "TRAMA_EGRESS_ALLOW": "127.0.0.1"}
REDIS_URL = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379")


def loadavg() -> float:
    """The 1-minute load average: printed next to every result (the machine is shared)."""
    return os.getloadavg()[0]


def emit(result: dict) -> None:
    """One scenario result as a JSON line on stdout; bench/run_all.py collects these."""
    print("BENCH_RESULT " + json.dumps(result, default=str), flush=True)


def broker_env(broker: str, redis_db: int) -> dict[str, str]:
    """TRAMA_BROKER_URL for "orm" (queue in PostgreSQL) or "redis" (a flushed database of its own)."""
    if broker != "redis":
        return {"TRAMA_BROKER_URL": ""}
    import redis

    url = f"{REDIS_URL}/{redis_db}"
    redis.Redis.from_url(url).flushdb()
    return {"TRAMA_BROKER_URL": url}


def group_cpu_seconds(pids: list[int]) -> float:
    """User+system CPU of every live process whose process group is one of ``pids``."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    groups = set(pids)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) in groups:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def group_pids(pid: int) -> list[int]:
    """Live pids in process group ``pid`` (a qcluster's sentinel, pusher, monitor and workers)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[3]) == pid:
                    out.append(int(entry.name))
            except OSError:
                continue
    return sorted(out)


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def table_bytes(*tables: str) -> int:
    """pg_total_relation_size (heap + TOAST + indexes) of ``tables``, through Django's connection."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT " + " + ".join(f"pg_total_relation_size('{t}')" for t in tables))
        return int(cursor.fetchone()[0])


def clone_execution(template_id, copies: int) -> None:
    """Insert ``copies`` executions identical to ``template_id`` (row and steps), new ids, server-side.

    For the scale scenarios: the template was driven by the real engine (start_execution +
    advance_execution), so each copy is in exactly the state a worker leaves an execution in.
    """
    from django.db import connection

    from executions.models import Execution, Step

    ex_cols = [f.column for f in Execution._meta.concrete_fields if f.column != "id"]
    st_cols = [f.column for f in Step._meta.concrete_fields if f.column not in ("id", "execution_id")]
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS bench_new_ids (id uuid PRIMARY KEY); TRUNCATE bench_new_ids;"
            "INSERT INTO bench_new_ids SELECT gen_random_uuid() FROM generate_series(1, %s);",
            [copies],
        )
        cursor.execute(
            f"INSERT INTO executions_execution (id, {', '.join(ex_cols)}) "
            f"SELECT n.id, {', '.join('e.' + c for c in ex_cols)} FROM bench_new_ids n "
            "CROSS JOIN executions_execution e WHERE e.id = %s",
            [template_id],
        )
        cursor.execute(
            f"INSERT INTO executions_step (execution_id, {', '.join(st_cols)}) "
            f"SELECT n.id, {', '.join('s.' + c for c in st_cols)} FROM bench_new_ids n "
            "CROSS JOIN executions_step s WHERE s.execution_id = %s",
            [template_id],
        )


def git_revision() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True)  # fmt: skip
        return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except OSError:
        return "unknown"


def machine_line() -> str:
    """CPU model, cores, memory and the PostgreSQL version: the machine a table ran on."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except OSError:
        mem_kb = 0
    return f"{model}, {os.cpu_count()} cores, {mem_kb / 1024 / 1024:.0f} GiB, Python {sys.version.split()[0]}"
