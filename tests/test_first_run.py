"""`make run` for a newcomer: the port of your choice (callbacks follow it) and one clear line when it cannot start.

The server tests run `manage.py trama_dev` in a subprocess, as `make run` does (the `make_run`
fixture in conftest.py), against the test database; the browser checks of the same server are in
test_ui_browser.py.
"""

import re
import shutil
import socket
import subprocess
import sys

import pytest
import requests
from django.core.management.base import CommandError
from django.db import connection

from executions.models import Execution
from tests.conftest import free_port
from tests.support import Callback, Reply, wait_until
from tests.support.workers import REPO_ROOT
from trama_project.management.commands.trama_dev import child_environment, parse_addr
from trama_project.models import ApiToken

TOKEN_LINE = re.compile(r"^  API token: (trama_\S+)   \(created now for local use; shown once\)$", re.MULTILINE)
NEW_TOKEN_LINE = (
    "  New token: .venv/bin/python manage.py create_api_token NAME   (a token is shown only when it is created)"
)
HINT_DATABASE = "start or create it, or fix DATABASE_URL (unset, Trama uses SQLite under var/)"
HINT_REDIS = "start redis-server, fix TRAMA_BROKER_URL, or unset it to keep the queue in the database"


# --- The port ------------------------------------------------------------------------------------


def test_make_run_hands_its_port_to_trama_dev():
    make = shutil.which("make")
    assert make, "make is needed for make run / make test"
    plan = subprocess.run(
        [make, "--no-print-directory", "-n", "run", "PORT=8010"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert plan.returncode == 0, plan.stderr
    assert plan.stdout.splitlines()[-1] == ".venv/bin/python manage.py trama_dev --addr 127.0.0.1:8010"


@pytest.mark.parametrize(
    ("addr", "environ", "public_url"),
    [
        ("127.0.0.1:8010", {}, "http://127.0.0.1:8010"),
        ("8010", {}, "http://127.0.0.1:8010"),
        ("0.0.0.0:8010", {}, "http://127.0.0.1:8010"),  # every interface: this machine reaches it on loopback
        ("[::1]:8010", {}, "http://[::1]:8010"),
        ("127.0.0.1:8010", {"TRAMA_PUBLIC_URL": ""}, "http://127.0.0.1:8010"),
        ("127.0.0.1:8010", {"TRAMA_PUBLIC_URL": "https://trama.example.com"}, "https://trama.example.com"),
    ],
)
def test_callback_urls_follow_the_port_unless_trama_public_url_is_set(addr, environ, public_url):
    host, port = parse_addr(addr)
    assert port == 8010
    environment = child_environment(host, port, {"HOME": "/root", **environ})
    assert environment == {"HOME": "/root", "TRAMA_PUBLIC_URL": public_url}


@pytest.mark.parametrize("addr", ["127.0.0.1:", "127.0.0.1:http", "127.0.0.1:0", "127.0.0.1:65536"])
def test_a_bad_addr_is_refused_naming_the_option(addr):
    with pytest.raises(CommandError) as refused:
        parse_addr(addr)
    assert str(refused.value) == (
        f"--addr must be host:port or a port from 1 to 65535 (make run PORT=8010), got {addr!r}"
    )


@pytest.mark.workers
@pytest.mark.django_db(transaction=True)
def test_on_another_port_the_server_answers_there_and_callbacks_come_back_to_it(make_run, service):
    service.script("POST", "/pix", Reply(202, callback=Callback({"status": "succeeded", "output": {"paid": True}})))
    base_url, process = make_run()
    banner = process.stdout_path.read_text()
    database = connection.settings_dict
    assert f"  Database : postgresql {database['NAME']} on {database['HOST']}:{database['PORT']}   (DATABASE_URL)" in (
        banner.splitlines()
    )
    assert "  Queue    : in the database (django-q2 ORM broker)   (TRAMA_BROKER_URL)" in banner.splitlines()
    assert f"  API docs : {base_url}/api/docs/" in banner.splitlines()
    assert f"  Callbacks: {base_url}/api/v1/callbacks/…   (TRAMA_PUBLIC_URL)" in banner.splitlines()
    assert NEW_TOKEN_LINE in banner.splitlines()
    (token,) = TOKEN_LINE.findall(banner)
    assert ApiToken.objects.count() == 1

    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {token}"  # the token the banner showed works
    node = {"type": "async_task", "request": {"method": "POST", "url": f"{service.url}/pix"}, "timeout_s": 60}
    definition = {"name": "first-run", "kind": "graph", "start": "pix", "nodes": {"pix": node}}
    assert api.post(f"{base_url}/api/v1/definitions/", json=definition, timeout=10).status_code == 201
    started = api.post(f"{base_url}/api/v1/executions/", json={"definition": "first-run", "input": {}}, timeout=10)
    assert started.status_code == 202, started.text
    execution_id = started.json()["id"]

    wait_until(lambda: Execution.objects.get(pk=execution_id).status == "SUCCEEDED", timeout=60, interval=0.2)
    (pix,) = service.calls("POST", "/pix")
    assert pix.header("X-Trama-Callback-Url").startswith(f"{base_url}/api/v1/callbacks/")
    assert [status for status, _ in service.callback_results] == [202]


# --- Clear failures: one line, a non-zero exit, no token -----------------------------------------


def run_trama_dev(environment: dict[str, str], addr: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "trama_dev", "--addr", addr],
        cwd=REPO_ROOT,
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def environment(worker_pool, dev_var_dir) -> dict[str, str]:
    """What trama_dev gets from `make run` here: the test database, its own var/ directory."""
    return worker_pool.base_env() | {"TRAMA_VAR_DIR": str(dev_var_dir)}


def test_a_taken_port_stops_the_start_with_one_line_and_no_token(environment):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_trama_dev(environment, f"127.0.0.1:{port}")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"CommandError: port {port} on 127.0.0.1 is already in use (another make run?): "
        f"stop that process or pick another port, e.g. make run PORT={port + 1}"
    ]
    assert result.stdout == ""
    assert ApiToken.objects.count() == 0


def test_an_unreachable_database_stops_the_start_with_one_line_without_its_password(environment):
    port = free_port()
    url = f"postgres://postgres:db-secret-1@127.0.0.1:{port}/trama"
    result = run_trama_dev(environment | {"DATABASE_URL": url}, f"127.0.0.1:{free_port()}")
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"CommandError: cannot reach the database postgresql trama on 127.0.0.1:{port} (")
    assert "Connection refused" in line
    assert line.endswith(HINT_DATABASE)
    assert "db-secret-1" not in result.stdout + result.stderr
    assert result.stdout == ""


def test_an_unreachable_redis_stops_the_start_with_one_line_and_no_token(environment):
    port = free_port()
    url = f"redis://:redis-secret-1@127.0.0.1:{port}/2"
    result = run_trama_dev(environment | {"TRAMA_BROKER_URL": url}, f"127.0.0.1:{free_port()}")
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"CommandError: cannot reach the queue, Redis on 127.0.0.1:{port}/2 (")
    assert "Connection refused" in line
    assert line.endswith(HINT_REDIS)
    assert "redis-secret-1" not in result.stdout + result.stderr
    assert result.stdout == ""
    assert ApiToken.objects.count() == 0
