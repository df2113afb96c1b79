"""Shared pieces of the benchmarks: a fresh database, Trama's processes, a fast service.

Benchmarks print numbers; nothing here asserts timings.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.request import urlopen

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
        return group_cpu_seconds([proc.pid for proc in self.procs])

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
    returns (status, body dict). A thread per connection, in this process: for hundreds of calls in
    flight against a slow service use DelayService."""

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


class DelayService:
    """A service that answers every request ``delay_s`` after it arrived, however many are in flight.

    An asyncio HTTP/1.1 keep-alive server (TCP_NODELAY, backlog 1024) in a forked child process:
    one thread holds thousands of connections, and the benchmark's client, pollers and samplers
    share no GIL with it. (A thread per connection, like FastService, measured here with 600 calls
    of 500 ms at load 9: p99 0.9-5.5 s; this server: 0.64-0.71 s.) ``handler(method, path, headers,
    body)`` computes the answer, as for FastService; it runs in the child, so state the benchmark
    needs goes out through ``stats()``: GET /_stats answers at once with the requests served and
    the most in flight at one time since the previous /_stats, merged with the handler's own answer
    to GET /_stats. Create it before starting threads (it forks).
    """

    def __init__(self, handler: Callable[[str, str, dict, bytes], tuple[int, dict]], delay_s: float = 0.0):
        ctx = multiprocessing.get_context("fork")
        parent, child = ctx.Pipe()
        self.proc = ctx.Process(target=_delay_serve, args=(handler, delay_s, child), daemon=True)
        self.proc.start()
        self.url = f"http://127.0.0.1:{parent.recv()}"

    def stats(self) -> dict:
        with urlopen(f"{self.url}/_stats", timeout=10) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.join(5)


def _delay_serve(handler, delay_s: float, conn) -> None:
    counts = {"requests": 0, "in_flight": 0, "in_flight_peak": 0}

    async def answer(method: str, path: str, headers: dict, body: bytes) -> tuple[int, dict]:
        if path == "/_stats":
            out = {"requests": counts["requests"], "in_flight_peak": counts["in_flight_peak"]}
            counts["in_flight_peak"] = counts["in_flight"]
            return 200, {**handler(method, path, headers, body)[1], **out}
        counts["requests"] += 1
        counts["in_flight"] += 1
        counts["in_flight_peak"] = max(counts["in_flight_peak"], counts["in_flight"])
        try:
            await asyncio.sleep(delay_s)
            return handler(method, path, headers, body)
        except Exception as exc:  # an answer, not a dropped connection the client would retry
            return 500, {"error": repr(exc)}
        finally:
            counts["in_flight"] -= 1

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
                lower = {k.lower(): v.lower() for k, v in headers.items()}
                if lower.get("transfer-encoding") == "chunked":
                    body = await _read_chunked(reader)
                else:
                    body = await reader.readexactly(int(lower.get("content-length") or 0))
                status, payload = await answer(method, path, headers, body)
                data = json.dumps(payload).encode()
                writer.write(b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                             % (status, HTTPStatus(status).phrase.encode(), len(data), data))  # fmt: skip
                await writer.drain()
                if lower.get("connection") == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client closed its keep-alive connection
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(connection, "127.0.0.1", 0, backlog=1024)
        conn.send(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(main())


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = b""
    while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
        body += (await reader.readexactly(size + 2))[:-2]
    await reader.readuntil(b"\r\n")  # the empty trailer
    return body


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


@dataclass
class ProcInfo:
    ppid: int
    session: int  # Processes starts each Trama process with start_new_session: its descendants share it
    cpu_s: float  # user + system of this process only (a reaped child's CPU is not added)
    started: int  # clock ticks after boot
    comm: str


_TICK = os.sysconf("SC_CLK_TCK")


def proc_table() -> dict[int, ProcInfo]:
    """Every live process, from one pass over /proc/<pid>/stat."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                raw = f.read().decode(errors="replace")
        except OSError:
            continue
        close = raw.rindex(")")
        fields = raw[close + 2 :].split()  # fields[0] is field 3 of proc(5), the state
        out[int(name)] = ProcInfo(
            ppid=int(fields[1]),
            session=int(fields[3]),
            cpu_s=(int(fields[11]) + int(fields[12])) / _TICK,
            started=int(fields[19]),
            comm=raw[raw.index("(") + 1 : close],
        )
    return out


def group_cpu_seconds(pids: list[int]) -> float:
    """User+system CPU of every live process in the session of one of ``pids`` (the process and all
    its descendants: Processes starts each one with start_new_session)."""
    groups = set(pids)
    return sum(info.cpu_s for info in proc_table().values() if info.session in groups)


def group_pids(pid: int) -> list[int]:
    """Live pids in the session of ``pid`` (a qcluster's sentinel, pusher, monitor and workers)."""
    return sorted(p for p, info in proc_table().items() if info.session == pid)


def status_kb(pid: int, field: str) -> int:
    """A kB field of /proc/<pid>/status (VmRSS: resident now, VmHWM: peak resident); 0 once gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def postgres_pids(table: dict[int, ProcInfo], database: str, exclude: set[int] = frozenset()) -> list[int]:
    """The local PostgreSQL server's processes working for ``database``: its client backends, the
    postmaster and the shared background processes (checkpointer, WAL writer...). Backends of other
    databases are left out: other people's test suites share the server."""
    out = []
    for pid, info in table.items():
        if info.comm != "postgres" or pid in exclude:
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                words = f.read().replace(b"\0", b" ").decode(errors="replace").split()
        except OSError:
            continue
        # A client backend's title is "... <user> <database> <host>(<port>) <state>" (or "[local]").
        client = any((w.endswith(")") and "(" in w) or w == "[local]" for w in words)
        if not client or database in words:
            out.append(pid)
    return out


def qcluster_workers(table: dict[int, ProcInfo], cluster_pid: int, workers: int) -> list[int]:
    """The worker processes of the qcluster started as ``cluster_pid``: django-q2's sentinel (the
    cluster's child) forks its ``workers`` workers first, then the monitor and the pusher. A worker
    recycled after Q_CLUSTER["recycle"] tasks would be missed; no benchmark run gets there."""
    sentinels = {pid for pid, info in table.items() if info.ppid == cluster_pid}
    children = sorted((info.started, pid) for pid, info in table.items() if info.ppid in sentinels)
    return [pid for _, pid in children[:workers]]


class Sampler:
    """Between start() and stop(), reads /proc every ``interval`` s in a thread: the CPU of the
    PostgreSQL processes working for ``database`` and the resident memory of the processes in the
    sessions of ``sessions`` (Trama's, or DBOS's).

    A backend that exits mid-window counts up to its last sample (at most ``interval`` s of its CPU
    is lost); one that starts mid-window counts from zero. One pass over /proc costs ~10 ms.
    """

    def __init__(self, sessions: list[int], database: str, exclude: set[int] = frozenset(), interval: float = 1.0):
        self.sessions, self.database, self.exclude, self.interval = set(sessions), database, exclude, interval
        self.pg_base: dict[int, float] = {}
        self.pg_last: dict[int, float] = {}
        self.peak_rss_kb = 0  # the largest sum of the sessions' VmRSS in one sample
        self.peak_hwm_kb: dict[int, int] = {}  # VmHWM per pid, kept after the process exits
        self.table: dict[int, ProcInfo] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> None:
        self.table = proc_table()
        for pid in postgres_pids(self.table, self.database, self.exclude):
            self.pg_last[pid] = self.table[pid].cpu_s
        rss = 0
        for pid, info in self.table.items():
            if info.session in self.sessions:
                rss += status_kb(pid, "VmRSS")
                self.peak_hwm_kb[pid] = max(self.peak_hwm_kb.get(pid, 0), status_kb(pid, "VmHWM"))
        self.peak_rss_kb = max(self.peak_rss_kb, rss)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def start(self) -> Sampler:
        self._sample()
        self.pg_base = dict(self.pg_last)
        self._thread.start()
        return self

    def stop(self) -> Sampler:
        self._stop.set()
        self._thread.join()
        self._sample()
        return self

    @property
    def pg_cpu_s(self) -> float:
        return sum(cpu - self.pg_base.get(pid, 0.0) for pid, cpu in self.pg_last.items())


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
