"""Outbound HTTP (executions/dispatch.py) against services that misbehave on the wire.

``RawService`` is a TCP server on 127.0.0.1 that writes whatever bytes a test
scripts, so a response can be cut short, go silent, or drip: things a proper
HTTP server never does. ``send`` must turn each into a failed ``Outcome``
(never an exception), and the execution must then follow its retry policy.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable

import pytest

from executions import dispatch
from executions.models import Execution
from executions.services import start_execution
from tests.support import Reply, wait_until
from tests.support.definitions import store
from tests.support.engine import history
from tests.support.specs import req, retry, task
from tests.test_egress import make_certificate

HEAD_200 = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"


class RawService:
    """Accepts connections on 127.0.0.1 and hands each one, its request read, to ``answer(conn)``.

    ``answer`` writes raw bytes. ``finished`` counts connections whose answer ran to its end;
    ``cut_off`` those where the client hung up first (a write failed).
    """

    def __init__(self, answer: Callable[[socket.socket], None], tls: ssl.SSLContext | None = None):
        self._answer = answer
        self._tls = tls
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.stopping = threading.Event()
        self.lock = threading.Condition()
        self.accepted = self.finished = self.cut_off = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
                self.lock.notify_all()
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                if self._tls is not None:
                    conn = self._tls.wrap_socket(conn, server_side=True)
                _read_request(conn)
                self._answer(conn)
                outcome = "finished"
            except OSError:
                outcome = "cut_off"
        with self.lock:
            setattr(self, outcome, getattr(self, outcome) + 1)
            self.lock.notify_all()

    def wait_done(self, n: int) -> None:
        """Block until ``n`` connections were answered or cut off (generous deadline)."""
        with self.lock:
            if not self.lock.wait_for(lambda: self.finished + self.cut_off >= n, timeout=30):
                raise AssertionError(f"expected {n} answered connection(s), got {self.finished + self.cut_off}")

    def close(self) -> None:
        self.stopping.set()
        self._listener.close()


def _read_request(conn: socket.socket) -> None:
    """Read one request head and its Content-Length body, so closing never resets unread data."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            raise OSError("client closed before sending a request")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
        0,
    )
    while len(body) < length:
        body += conn.recv(65536)


@pytest.fixture
def raw_service(settings):
    """Start RawServices answering with a given function; every one is closed after the test."""
    settings.TRAMA_EGRESS_ALLOW = ["127.0.0.1"]
    started: list[RawService] = []

    def start(answer: Callable[[socket.socket], None], tls: ssl.SSLContext | None = None) -> RawService:
        started.append(RawService(answer, tls))
        return started[-1]

    yield start
    for service in started:
        service.close()


def cut_short(conn: socket.socket) -> None:
    """Announce 100 bytes of body, send 10, close."""
    conn.sendall(HEAD_200 + b"Content-Length: 100\r\n\r\n" + b'{"ok": tru')


def silent_mid_body(stop: threading.Event) -> Callable[[socket.socket], None]:
    """Announce 100 bytes of body, send 10, then say nothing until the test ends."""

    def answer(conn: socket.socket) -> None:
        conn.sendall(HEAD_200 + b"Content-Length: 100\r\n\r\n" + b'{"ok": tru')
        stop.wait(60)

    return answer


# --- Responses cut short ---------------------------------------------------------------------------


def test_a_body_shorter_than_its_content_length_is_a_network_failure(raw_service, db):
    service = raw_service(cut_short)
    outcome = dispatch.send(req("GET", service.url + "/short", query={"k": "hush"}), {})
    assert outcome.response is None
    assert outcome.failure == "network"
    assert outcome.error == (
        f"the response was cut short (10 bytes of body read, 90 more expected) calling 127.0.0.1:{service.port}"
    )


def test_a_body_that_goes_silent_is_a_timeout(raw_service, db):
    stop = threading.Event()
    service = raw_service(silent_mid_body(stop))
    try:
        outcome = dispatch.send(req("GET", service.url + "/silent", timeout_s=1.0), {})
    finally:
        stop.set()
    assert outcome.response is None
    assert outcome.failure == "timeout"
    assert outcome.error == f"timed out after 1.0s (reading the response body) calling 127.0.0.1:{service.port}"


@pytest.mark.workers
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("answer", "failure"), [("cut_short", "network"), ("silent", "timeout")])
def test_a_worker_retries_a_broken_response_then_fails_the_execution(raw_service, worker_pool, answer, failure):
    stop = threading.Event()
    service = raw_service(cut_short if answer == "cut_short" else silent_mid_body(stop))
    worker_pool.start_worker()
    worker_pool.start_timers()
    request = req("POST", service.url + "/a", body={"n": 1}, timeout_s=1.0)
    definition = store({"a": task(request, retry=retry(3), on_failure="fail")}, "a")
    try:
        execution, _ = start_execution(definition, {})
        wait_until(
            lambda: Execution.objects.get(pk=execution.pk).status == "FAILED", timeout=60, message="execution FAILED"
        )
    finally:
        stop.set()
    execution.refresh_from_db()
    assert history(execution) == [("a", "forward", n, "failed") for n in (1, 2, 3)]
    assert [s.error["failure"] for s in execution.steps.order_by("seq")] == [failure] * 3
    assert execution.error["failure"] == failure and execution.error["attempt"] == 3
    assert service.accepted == 3  # no attempt beyond max_attempts


def test_a_body_that_does_not_decompress_is_a_network_failure(raw_service, db):
    service = raw_service(
        lambda conn: conn.sendall(HEAD_200 + b"Content-Encoding: gzip\r\nContent-Length: 9\r\n\r\nnot gzip!")
    )
    outcome = dispatch.send(req("GET", service.url + "/gz"), {})
    assert outcome.response is None
    assert outcome.failure == "network"
    assert outcome.error == (
        "the response body could not be decoded (its Content-Encoding does not match the data) "
        f"calling 127.0.0.1:{service.port}"
    )


# --- A total deadline per call ---------------------------------------------------------------------


@pytest.fixture
def release():
    """Set at the end of the test: dripping services send the rest at once and their threads end."""
    event = threading.Event()
    yield event
    event.set()


def dripping(prefix: bytes, dripped: bytes, rest: bytes, release: threading.Event) -> Callable[[socket.socket], None]:
    """Send ``prefix``; then ``dripped`` one byte every half second (the remainder at once after ``release``); then
    ``rest``. Each byte alone comes well within any per-read timeout."""

    def answer(conn: socket.socket) -> None:
        conn.sendall(prefix)
        for i in range(len(dripped)):
            if release.wait(0.5):
                conn.sendall(dripped[i:])
                break
            conn.sendall(dripped[i : i + 1])
        conn.sendall(rest)

    return answer


DRIPPED_HEADERS = (b"HTTP/1.1 200 OK\r\n", b"X-Drip: " + b"a" * 40, b"\r\nContent-Length: 2\r\n\r\n{}")
DRIPPED_BODY = (HEAD_200 + b"Content-Length: 42\r\n\r\n", b'"' + b"a" * 40 + b'"', b"")


@pytest.mark.parametrize(
    ("parts", "phase"),
    [(DRIPPED_HEADERS, "waiting for the response"), (DRIPPED_BODY, "reading the response body")],
    ids=["headers", "body"],
)
def test_a_dripping_service_hits_the_call_deadline(raw_service, release, db, parts, phase):
    service = raw_service(dripping(*parts, release))
    outcome = dispatch.send(req("GET", service.url + "/drip", timeout_s=2.0), {})
    assert outcome.response is None
    assert outcome.failure == "timeout"
    assert outcome.error == f"timed out after 2.0s ({phase}) calling 127.0.0.1:{service.port}"
    service.wait_done(1)
    assert (service.cut_off, service.finished) == (1, 0)  # Trama hung up before the last byte came


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    return make_certificate(tmp_path_factory.mktemp("tls"), "IP:127.0.0.1")


def test_a_service_dripping_over_https_hits_the_call_deadline(raw_service, release, tls_files, monkeypatch, db):
    cert, key = tls_files
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(cert, key)
    monkeypatch.setattr(dispatch, "_tls_context", lambda: dispatch._new_tls_context(str(cert)))
    service = raw_service(dripping(*DRIPPED_BODY, release), tls=server_side)
    outcome = dispatch.send(req("GET", service.url + "/drip", timeout_s=2.0), {})
    assert outcome.failure == "timeout"
    service.wait_done(1)
    assert (service.cut_off, service.finished) == (1, 0)

    release.set()  # the same service answering at once: TLS itself works
    outcome = dispatch.send(req("GET", service.url + "/drip", timeout_s=2.0), {})
    assert outcome.failure is None, outcome.error
    assert outcome.response["body"] == "a" * 40


def test_calls_held_by_dripping_services_do_not_stall_a_call_in_another_thread(raw_service, release, service, db):
    slow = raw_service(dripping(*DRIPPED_BODY, release))
    results: dict[int, dispatch.Outcome] = {}

    def call_slow(n: int) -> None:
        results[n] = dispatch.send(req("GET", slow.url + "/drip", timeout_s=60.0), {})

    threads = [threading.Thread(target=call_slow, args=(n,)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    with slow.lock:
        assert slow.lock.wait_for(lambda: slow.accepted == 2, timeout=30)

    service.script("GET", "/fast", Reply(200, {"fast": True}))
    fast = dispatch.send(req("GET", service.url + "/fast", timeout_s=30.0), {})
    assert fast.failure is None and fast.response["body"] == {"fast": True}
    assert results == {} and slow.finished == 0  # both slow calls were still in flight

    release.set()
    for thread in threads:
        thread.join(timeout=30)
    assert [(results[n].failure, results[n].response["body"]) for n in (1, 2)] == [(None, "a" * 40)] * 2


# --- The request on the wire, and the pool -------------------------------------------------------------


def test_the_request_carries_method_query_body_and_headers_as_rendered(service, settings, db):
    settings.TRAMA_EGRESS_ALLOW = ["127.0.0.1"]
    request = req(
        "post",
        service.url + "/orders?fixed=1",
        headers={"X-Tenant": "acme", "idempotency-key": "overridden", "Content-Type": "application/vnd+json"},
        query={"many": ["a", "b c"], "n": 5, "skipped": None},
        body={"n": 1, "name": "é"},
    )
    outcome = dispatch.send(request, {"Idempotency-Key": "ex:a:1"})
    assert outcome.failure is None, outcome.error
    [seen] = service.requests
    assert (seen.method, seen.path) == ("POST", "/orders")
    assert seen.query == {"fixed": "1", "many": ["a", "b c"], "n": "5"}
    assert seen.body == {"n": 1, "name": "é"}
    assert {name: seen.header(name) for name in ("X-Tenant", "Idempotency-Key", "Content-Type", "User-Agent")} == {
        "X-Tenant": "acme",
        "Idempotency-Key": "ex:a:1",  # Trama's headers win over the request's
        "Content-Type": "application/vnd+json",
        "User-Agent": "Trama",
    }
    assert seen.header("Authorization") is None and seen.header("Cookie") is None


def test_user_and_password_in_the_url_are_sent_as_basic_authentication(service, settings, db):
    settings.TRAMA_EGRESS_ALLOW = ["127.0.0.1"]
    url = service.url.replace("http://", "http://ana:p%40ss@") + "/x"
    assert dispatch.send(req("GET", url), {}).failure is None
    assert service.requests[0].header("Authorization") == "Basic YW5hOnBAc3M="  # ana:p@ss


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({"X-Bad": "a\r\nInjected: 1"}, "invalid request: header 'X-Bad' holds a line break or NUL character"),
        (
            {"X-Name": "Zoë ☃"},
            "invalid request: header 'X-Name' holds characters HTTP headers cannot carry (outside Latin-1)",
        ),
        ({"Bad Name": "v"}, "invalid request: header name 'Bad Name' is not an HTTP token"),
    ],
)
def test_a_header_http_cannot_carry_fails_the_call_naming_the_header(service, settings, db, headers, error):
    settings.TRAMA_EGRESS_ALLOW = ["127.0.0.1"]
    outcome = dispatch.send(req("GET", service.url + "/x", headers=headers), {})
    assert (outcome.failure, outcome.error) == ("network", error)
    assert service.requests == []


def test_an_invalid_method_fails_the_call_naming_the_method(service, settings, db):
    settings.TRAMA_EGRESS_ALLOW = ["127.0.0.1"]
    outcome = dispatch.send(req("GET /evil HTTP/1.1\r\nX:", service.url + "/x"), {})
    assert (outcome.failure, outcome.error) == ("network", "invalid request: the method is not an HTTP token")
    assert service.requests == []


def keep_alive(conn: socket.socket) -> None:
    """Answer requests on one connection until the client closes it (the first request is already read)."""
    while True:
        conn.sendall(HEAD_200 + b'Content-Length: 12\r\n\r\n{"ok": true}')
        try:
            _read_request(conn)
        except OSError:
            return


def test_calls_to_one_service_reuse_a_keep_alive_connection(raw_service, db):
    service = raw_service(keep_alive)
    outcomes = [dispatch.send(req("GET", service.url + f"/{n}"), {}) for n in range(3)]
    assert [o.response["body"] for o in outcomes] == [{"ok": True}] * 3
    assert service.accepted == 1


def test_a_body_over_the_cap_is_not_left_on_a_reused_connection(service, settings, db):
    settings.TRAMA_EGRESS_ALLOW = ["127.0.0.1"]
    settings.TRAMA_RESPONSE_BODY_CAP = 10
    service.script("GET", "/big", Reply(200, "x" * 5000))
    service.script("GET", "/small", Reply(200, {"a": 1}))
    big = dispatch.send(req("GET", service.url + "/big"), {})
    small = dispatch.send(req("GET", service.url + "/small"), {})
    assert big.response["body"] == {"truncated": True, "text": "x" * 10}
    assert small.response["body"] == {"a": 1}
