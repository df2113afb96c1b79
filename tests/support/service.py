"""A real, scriptable HTTP service for tests: the "user's service" Trama calls.

``TestService`` is a threaded HTTP/1.1 server (keep-alive, TCP_NODELAY) on
127.0.0.1 with an ephemeral port. It records every request and answers from a
per-route script of ``Reply`` behaviours, falling back to a route default and
then to a global default (200 ``{"ok": true, "path": ..., "echo": <body>}``).

A ``Reply`` may be slow (``delay_s``), drop the connection without answering
(``drop=True``), or call Trama back (``callback=Callback(...)``) using the
``X-Trama-Callback-Url`` / ``X-Trama-Callback-Token`` headers of the request.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import requests

CALLBACK_URL_HEADER = "X-Trama-Callback-Url"
CALLBACK_TOKEN_HEADER = "X-Trama-Callback-Token"


class Headers(dict):
    """A dict of headers with case-insensitive lookup (keys are stored lower-cased)."""

    def __init__(self, items=()):
        super().__init__()
        for key, value in dict(items).items():
            self[key] = value

    def __setitem__(self, key, value):
        super().__setitem__(key.lower(), value)

    def __getitem__(self, key):
        return super().__getitem__(key.lower())

    def __contains__(self, key):
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key, default=None):
        return super().get(key.lower(), default)


@dataclass
class Recorded:
    """One request the service received."""

    method: str
    path: str
    query: dict[str, Any]
    headers: Headers
    body: Any
    at: float  # time.time() when the request was fully read

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)


@dataclass
class Callback:
    """Make the service call Trama back.

    ``body`` is JSON (or a callable taking the ``Recorded`` request and returning JSON).
    ``token_in="url"`` POSTs to the callback URL as given (the token travels in the URL);
    ``token_in="header"`` POSTs to the same URL and also sends ``X-Trama-Callback-Token``.
    ``url`` / ``token`` override what the request headers said (e.g. a forged token); either may be
    a callable taking the ``Recorded`` request (a service that reads them from the request body).
    ``token_header`` names the header the token goes back in (the original Trama's is X-Callback-Token).
    """

    body: Any
    delay_s: float = 0.0
    times: int = 1
    before_reply: bool = False
    token_in: Literal["url", "header"] = "url"
    url: str | Callable[[Recorded], str] | None = None
    token: str | Callable[[Recorded], str] | None = None
    timeout_s: float = 10.0
    token_header: str = "X-Trama-Callback-Token"


@dataclass
class Reply:
    """One scripted behaviour of a route.

    ``body``: JSON value, ``str``/``bytes`` (sent raw), ``None`` (empty body), or a callable
    taking the ``Recorded`` request and returning one of those.
    """

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    drop: bool = False
    callback: Callback | None = None


def _parse_body(raw: bytes) -> Any:
    if not raw:
        return None
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def _encode_body(body: Any) -> tuple[bytes, str | None]:
    if body is None:
        return b"", None
    if isinstance(body, bytes):
        return body, "application/octet-stream"
    if isinstance(body, str):
        return body.encode(), "text/plain; charset=utf-8"
    return json.dumps(body).encode(), "application/json"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address, handler, owner: TestService):
        self.owner = owner
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(address, handler)

    def get_request(self):
        conn, addr = super().get_request()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.sockets_lock:
            self.open_sockets.add(conn)
        return conn, addr

    def shutdown_request(self, request):
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address):
        # Clients hanging up (timeouts, dropped connections) are normal in these tests.
        pass

    def close_all_connections(self):
        with self.sockets_lock:
            sockets = list(self.open_sockets)
            self.open_sockets.clear()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format, *args):
        pass

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size_line = self.rfile.readline()
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    # trailers until the empty line
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _handle(self):
        owner = self.server.owner
        raw = self._read_body()
        split = urlsplit(self.path)
        query = {k: v[0] if len(v) == 1 else v for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        recorded = Recorded(
            method=self.command,
            path=split.path,
            query=query,
            headers=Headers(self.headers.items()),
            body=_parse_body(raw),
            at=time.time(),
        )
        reply = owner._record_and_pick(recorded)

        if reply.delay_s:
            time.sleep(reply.delay_s)
        if reply.callback is not None and reply.callback.before_reply:
            for _ in range(max(1, reply.callback.times)):
                owner._send_callback(reply.callback, recorded)
        if reply.drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                # RST instead of FIN so the client sees an abrupt network error.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                self.connection.shutdown(socket.SHUT_RDWR)
            return

        body = reply.body(recorded) if callable(reply.body) else reply.body
        payload, content_type = _encode_body(body)
        self.send_response(reply.status)
        headers = Headers(reply.headers)
        if content_type and "content-type" not in headers:
            headers["Content-Type"] = content_type
        headers["Content-Length"] = str(len(payload))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD" and payload:
            self.wfile.write(payload)
        self.wfile.flush()

        if reply.callback is not None and not reply.callback.before_reply:
            owner._spawn_callbacks(reply.callback, recorded)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


class TestService:
    """A scriptable HTTP service on 127.0.0.1:<ephemeral port>. See the module docstring."""

    __test__ = False  # not a pytest test class

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self._address = (host, port)
        self._lock = threading.Condition()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._callback_threads: list[threading.Thread] = []
        self.requests: list[Recorded] = []
        self.callback_results: list[tuple[int | None, Any]] = []
        self._scripts: dict[tuple[str, str], deque[Reply]] = defaultdict(deque)
        self._defaults: dict[tuple[str, str], Reply] = {}
        self.global_default: Reply | None = None  # None: 200 {"ok": true, "path": ..., "echo": ...}

    # --- lifecycle ------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("TestService is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> TestService:
        if self._server is not None:
            return self
        self._server = _Server(self._address, _Handler, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="TestService", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.close_all_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> TestService:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- scripting ------------------------------------------------------------
    def script(self, method: str, path: str, *responses: Reply) -> TestService:
        """Queue behaviours for (method, path), consumed one per request, in order."""
        with self._lock:
            self._scripts[(method.upper(), path)].extend(responses)
        return self

    def default(self, method: str, path: str, response: Reply) -> TestService:
        """The behaviour for (method, path) once its script is used up."""
        with self._lock:
            self._defaults[(method.upper(), path)] = response
        return self

    def pending(self, method: str, path: str) -> int:
        """How many scripted behaviours for (method, path) are not consumed yet."""
        with self._lock:
            return len(self._scripts.get((method.upper(), path), ()))

    def reset(self) -> None:
        """Forget recorded requests, callback results, scripts and defaults."""
        with self._lock:
            self.requests.clear()
            self.callback_results.clear()
            self._scripts.clear()
            self._defaults.clear()
            self.global_default = None

    def _record_and_pick(self, recorded: Recorded) -> Reply:
        key = (recorded.method, recorded.path)
        with self._lock:
            self.requests.append(recorded)
            self._lock.notify_all()
            queue = self._scripts.get(key)
            if queue:
                return queue.popleft()
            if key in self._defaults:
                return self._defaults[key]
            if self.global_default is not None:
                return self.global_default
        return Reply(200, {"ok": True, "path": recorded.path, "echo": recorded.body})

    # --- inspection -----------------------------------------------------------
    def calls(self, method: str | None = None, path: str | None = None) -> list[Recorded]:
        with self._lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method.upper()) and (path is None or r.path == path)
            ]

    def wait_for_calls(
        self, n: int, path: str | None = None, timeout: float = 10, method: str | None = None
    ) -> list[Recorded]:
        """Block until at least ``n`` matching requests arrived; return them. AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                found = self.calls(method, path)
                if len(found) >= n:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [(r.method, r.path) for r in self.requests]
                    raise AssertionError(
                        f"expected {n} call(s) to {method or '*'} {path or '*'} within {timeout}s, "
                        f"got {len(found)}; all requests: {seen}"
                    )
                self._lock.wait(min(remaining, 0.1))

    def wait_for_callbacks(self, n: int, timeout: float = 10) -> list[tuple[int | None, Any]]:
        """Block until at least ``n`` callbacks got an answer (or failed); return the results."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.callback_results) < n:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"expected {n} callback result(s) within {timeout}s, got {self.callback_results}"
                    )
                self._lock.wait(min(remaining, 0.1))
            return list(self.callback_results)

    # --- callbacks ------------------------------------------------------------
    def _spawn_callbacks(self, callback: Callback, recorded: Recorded) -> None:
        for _ in range(max(1, callback.times)):
            thread = threading.Thread(
                target=self._send_callback, args=(callback, recorded), name="TestService-callback", daemon=True
            )
            with self._lock:
                self._callback_threads.append(thread)
            thread.start()

    def _send_callback(self, callback: Callback, recorded: Recorded) -> None:
        if callback.delay_s:
            time.sleep(callback.delay_s)
        url = (callback.url(recorded) if callable(callback.url) else callback.url) or recorded.headers.get(
            CALLBACK_URL_HEADER
        )
        token = callback.token(recorded) if callable(callback.token) else callback.token
        token = token if token is not None else recorded.headers.get(CALLBACK_TOKEN_HEADER)
        result: tuple[int | None, Any]
        if not url:
            result = (None, f"no {CALLBACK_URL_HEADER} header in the request")
        else:
            headers = {}
            if callback.token_in == "header" and token is not None:
                headers[callback.token_header] = token
            body = callback.body(recorded) if callable(callback.body) else callback.body
            try:
                answer = requests.post(url, json=body, headers=headers, timeout=callback.timeout_s)
                try:
                    answer_body: Any = answer.json()
                except ValueError:
                    answer_body = answer.text
                result = (answer.status_code, answer_body)
            except requests.RequestException as exc:
                result = (None, f"{type(exc).__name__}: {exc}")
        with self._lock:
            self.callback_results.append(result)
            self._lock.notify_all()

    def join_callbacks(self, timeout: float = 10) -> None:
        """Wait for background callback threads to finish."""
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._callback_threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
