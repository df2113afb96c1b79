"""The little HTTP plumbing the demo services share (standard library only, no Django).

Each demo service subclasses ``JsonHandler`` and lists its routes; ``serve``
runs it until Ctrl-C or SIGTERM. Every request is logged on one line, with the
``Idempotency-Key`` Trama sent, so the demo shows what Trama does.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_counter = itertools.count(1)
_counter_lock = threading.Lock()

# A route answers (status, payload); it may read the body and the path's captured groups.
Route = Callable[["JsonHandler", dict, tuple], tuple[int, dict]]


def next_id(prefix: str) -> str:
    with _counter_lock:
        return f"{prefix}-{next(_counter)}"


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


def post_json(url: str, body: dict, delay_s: float = 0.0, *, abbreviate: bool = True) -> None:
    """POST ``body`` to ``url`` after ``delay_s`` (how a service calls Trama back); logs the answer.

    The log shows the URL's first 60 characters, or all of it when ``abbreviate`` is false.
    """
    time.sleep(delay_s)
    shown = f"{url[:60]}..." if abbreviate else url
    data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            log(f"callback -> {shown} {answer.status} {answer.read().decode(errors='replace')}")
    except urllib.error.HTTPError as exc:
        log(f"callback -> {shown} {exc.code} {exc.read().decode(errors='replace')}")
    except OSError as exc:
        log(f"callback -> {shown} failed: {exc}")


def in_background(function: Callable, *args) -> None:
    threading.Thread(target=function, args=args, daemon=True).start()


def truthy(value) -> bool:
    """Templates render a flag as JSON or text: accept true, "true", "1", 1."""
    return value in (True, "true", "True", "1", 1)


class JsonHandler(BaseHTTPRequestHandler):
    """JSON in, JSON out. ``routes`` maps (method, path regex) to a Route."""

    routes: dict[tuple[str, str], Route] = {}
    server_version = "trama-demo/1.0"

    def log_message(self, format, *args):
        pass  # _answer writes one line per request instead

    def _body(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}

    def _answer(self, status: int, payload: dict, body: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        key = self.headers.get("Idempotency-Key", "-")
        sent = f" {json.dumps(body)}" if body else ""
        log(f"{self.command} {self.path}{sent} -> {status} {json.dumps(payload)} (Idempotency-Key: {key})")

    def _dispatch(self) -> None:
        body = self._body()
        path = self.path.split("?", 1)[0].rstrip("/")
        for (method, pattern), route in self.routes.items():
            match = re.fullmatch(pattern, path)
            if method == self.command and match:
                status, payload = route(self, body, match.groups())
                return self._answer(status, payload, body)
        return self._answer(404, {"error": f"no route {self.command} {path}"}, body)

    do_GET = do_POST = do_PUT = do_DELETE = _dispatch


def serve(handler: type[JsonHandler], name: str, default_port: int, port_variable: str) -> None:
    """Listen on 127.0.0.1 (or ``<PREFIX>_HOST``) at argv[1], ``port_variable`` or ``default_port``."""
    port = int(sys.argv[1]) if len(sys.argv) > 1 else int(os.environ.get(port_variable, str(default_port)))
    host = os.environ.get(port_variable.replace("_PORT", "_HOST"), "127.0.0.1")
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    # Ctrl-C and SIGTERM both stop it (even when started in the background, where SIGINT is ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    log(f"{name} listening on http://{host}:{port} (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        log(f"{name} stopped")
