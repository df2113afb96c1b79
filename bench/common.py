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
