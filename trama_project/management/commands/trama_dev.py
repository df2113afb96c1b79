"""`make run`: web server, worker cluster and timer loop together, stopped together on Ctrl-C.

Before anything starts it checks what the three processes need (the port free, the database
and the queue reachable) and stops with one line saying what is wrong and how to fix it. Only
then does it migrate, collect the static files WhiteNoise serves, mint a first API token (shown
once) and start the processes, so a failed start never shows a token nobody could use.
"""

import errno
import os
import signal
import socket
import subprocess
import sys
import time
from urllib.parse import urlsplit

import psycopg
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connection

from trama_project.models import ApiToken

DEFAULT_HOST = "127.0.0.1"
NEW_TOKEN_HINT = ".venv/bin/python manage.py create_api_token NAME"
# Bound so an unreachable Redis host (packets dropped, not refused) still fails in seconds.
BROKER_TIMEOUT_S = 5.0


class Command(BaseCommand):
    help = "Run Trama for local use: runserver + qcluster + trama_timers in one terminal."

    def add_arguments(self, parser):
        parser.add_argument(
            "--addr",
            default=f"{DEFAULT_HOST}:8000",
            help="host:port (or just a port) the web server binds; callback URLs follow unless TRAMA_PUBLIC_URL is set",
        )

    def handle(self, *args, addr: str, **options):
        host, port = parse_addr(addr)
        check_port_free(host, port)
        check_database()
        check_broker()
        self.stdout.write("Migrating the database and collecting static files…")
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        environment = child_environment(host, port, os.environ)
        self._print_welcome(host, port, environment["TRAMA_PUBLIC_URL"])
        self._run(f"[{host}]:{port}" if ":" in host else f"{host}:{port}", environment)

    def _run(self, addr: str, environment: dict[str, str]) -> None:
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        # Own sessions: Ctrl-C reaches only this process, which stops each child exactly once
        # (qcluster hangs when it gets SIGINT from the terminal and again from us).
        commands = [["runserver", "--noreload", addr], ["qcluster"], ["trama_timers"]]
        processes = [subprocess.Popen([*manage, *cmd], env=environment, start_new_session=True) for cmd in commands]
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        try:
            while all(p.poll() is None for p in processes):
                time.sleep(0.5)
            exited = next(cmd[0] for cmd, p in zip(commands, processes, strict=True) if p.returncode is not None)
        except KeyboardInterrupt:
            self.stdout.write("\nStopping Trama…")
            return
        finally:
            self._stop(processes)
        raise CommandError(f"{exited} exited; stopped the other Trama processes (its messages are above)")

    def _print_welcome(self, host: str, port: int, public_url: str) -> None:
        base = f"http://{url_host(host)}:{port}"
        self.stdout.write("Trama is starting")
        self.stdout.write(f"  Database : {describe_database()}   (DATABASE_URL)")
        self.stdout.write(f"  Queue    : {describe_broker()}   (TRAMA_BROKER_URL)")
        self.stdout.write(f"  API docs : {base}/api/docs/")
        self.stdout.write(f"  Admin    : {base}/admin/   (create a login: .venv/bin/python manage.py createsuperuser)")
        self.stdout.write(f"  Editor   : {base}/ui/editor/")
        self.stdout.write(f"  Callbacks: {public_url}/api/v1/callbacks/…   (TRAMA_PUBLIC_URL)")
        if not ApiToken.objects.active().exists():
            _, raw = ApiToken.mint("local-dev")
            self.stdout.write(f"  API token: {raw}   (created now for local use; shown once)")
        self.stdout.write(f"  New token: {NEW_TOKEN_HINT}   (a token is shown only when it is created)")
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


def parse_addr(addr: str) -> tuple[str, int]:
    """``host:port``, ``[::1]:port`` or a bare ``port`` (on 127.0.0.1) → (host, port); CommandError otherwise."""
    host, _, port_text = addr.rpartition(":")
    host = host.strip("[]") or DEFAULT_HOST
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise CommandError(f"--addr must be host:port or a port from 1 to 65535 (make run PORT=8010), got {addr!r}")
    return host, int(port_text)


def url_host(host: str) -> str:
    """The host as a URL writes it: an address that means "every interface" becomes this machine's loopback."""
    if host in ("0.0.0.0", "::"):
        return DEFAULT_HOST
    return f"[{host}]" if ":" in host else host


def child_environment(host: str, port: int, environ: dict[str, str]) -> dict[str, str]:
    """The environment of web, workers and timers: callback URLs point at the port the web server binds,
    unless TRAMA_PUBLIC_URL was set explicitly (a proxy or tunnel in front)."""
    environment = dict(environ)
    if not environment.get("TRAMA_PUBLIC_URL"):
        environment["TRAMA_PUBLIC_URL"] = f"http://{url_host(host)}:{port}"
    return environment


def check_port_free(host: str, port: int) -> None:
    """CommandError when nothing can listen on host:port (taken, or not an address of this machine)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As runserver does: a port left in TIME_WAIT by the last run is free, one with a listener is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CommandError(
                    f"port {port} on {host} is already in use (another make run?): "
                    f"stop that process or pick another port, e.g. make run PORT={port + 1}"
                )
            raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror}; check the host in --addr")


def check_database() -> None:
    """CommandError naming the database (never its password) when it does not answer."""
    try:
        if connection.vendor == "postgresql":
            # A connection of its own, not from the pool: the pool retries for its whole timeout and
            # then reports the wait, not the reason.
            psycopg.connect(**connection.get_connection_params(), connect_timeout=5).close()
        else:
            connection.ensure_connection()
    except (DatabaseError, psycopg.Error) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CommandError(
            f"cannot reach the database {describe_database()} ({reason}): start or create it, or fix DATABASE_URL "
            "(unset, Trama uses SQLite under var/)"
        )


def check_broker() -> None:
    """CommandError when the queue is Redis (TRAMA_BROKER_URL) and Redis does not answer a PING."""
    url = settings.Q_CLUSTER.get("redis")
    if not url:
        return  # the queue lives in the database, checked already
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=BROKER_TIMEOUT_S, socket_timeout=BROKER_TIMEOUT_S)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise CommandError(
            f"cannot reach the queue, {describe_broker()} ({exc}): start redis-server, fix TRAMA_BROKER_URL, "
            "or unset it to keep the queue in the database"
        )
    finally:
        client.close()


def describe_database() -> str:
    """Engine, name and server of the database, without credentials (the banner and errors show it)."""
    database = settings.DATABASES["default"]
    engine = database["ENGINE"].rsplit(".", 1)[-1]
    if engine == "sqlite3":
        return f"sqlite3 {database['NAME']}"
    server = f"{database.get('HOST') or 'localhost'}:{database.get('PORT') or 'default port'}"
    return f"{engine} {database['NAME']} on {server}"


def describe_broker() -> str:
    """Where the queue lives, without credentials."""
    url = settings.Q_CLUSTER.get("redis")  # settings decide which broker a URL selects
    if not url:
        return "in the database (django-q2 ORM broker)"
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"Redis on the unix socket {parts.path}"
    return f"Redis on {parts.hostname}:{parts.port or 6379}{parts.path or '/0'}"
