"""Outbound HTTP: the one place Trama calls users' services.

A pooled ``requests`` session per thread, connect and read timeouts, no
redirects (a 3xx is an answer like any other), no cookies kept between calls,
the egress guard, and a cap on how much of a response is read and kept.
Returns an ``Outcome`` instead of raising: the state machine decides what a
failure means.

The egress guard resolves the host and checks every address; ``PinnedAdapter``
then makes the connection to the checked address, so the name is never
resolved a second time (see its docstring). Error messages never carry the
URL, nor the host name: a template may have put a secret in either, so they
name the checked address and port, and any configured secret left in a
message (an egress refusal names the host) is masked.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cache
from http.cookiejar import DefaultCookiePolicy
from typing import Any
from urllib.parse import urlsplit

import certifi
import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import DecodeError, NewConnectionError, ProtocolError, ReadTimeoutError
from urllib3.util.ssl_ import create_urllib3_context
from urllib3.util.ssl_match_hostname import CertificateError

from executions import telemetry
from executions.egress import EgressDenied, Target, resolve

_local = threading.local()
_call = threading.local()  # .deadline: the time.monotonic() by which this thread's current call must be over
_MAX_HEADERS = 50
_MAX_HEADER_CHARS = 4096
# Deeper JSON is kept as text: templates, rules and PostgreSQL all recurse over it.
_MAX_JSON_DEPTH = 200


@dataclass(frozen=True)
class Outcome:
    """``failure`` is None when a response came back (whatever its status), else
    "network", "timeout" or "egress"."""

    response: dict | None
    failure: str | None = None
    error: str = ""
    elapsed_ms: float = 0.0


# --- The deadline of a call ------------------------------------------------------------------------
# A socket timeout bounds one operation: a service that drips a byte every half second would hold a
# call, and the thread making it, for as long as it likes. Every socket Trama calls services on
# instead sets its timeout to the time left before each blocking operation (connect, TLS handshake,
# send, every read), so ``timeout_s`` bounds the whole call. The deadline is the calling thread's:
# any number of calls can be in flight in threads of one process, each with its own.


@contextmanager
def _deadline(seconds: float) -> Iterator[float]:
    """Within the block, this thread's sockets give up at ``seconds`` from now; yields that time."""
    _call.deadline = time.monotonic() + seconds
    try:
        yield _call.deadline
    finally:
        _call.deadline = None


class _DeadlineOps:
    """Socket operations that wait no longer than the calling thread's deadline (none outside a call)."""

    def _arm(self) -> None:
        deadline = getattr(_call, "deadline", None)
        if deadline is None:
            return
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")  # socket.timeout: what urllib3 and http.client expect
        self.settimeout(left)

    def recv(self, *args):
        self._arm()
        return super().recv(*args)

    def recv_into(self, *args):
        self._arm()
        return super().recv_into(*args)

    def send(self, *args):
        self._arm()
        return super().send(*args)

    def sendall(self, *args):
        self._arm()
        return super().sendall(*args)


class _DeadlineSocket(_DeadlineOps, socket.socket):
    pass


class _DeadlineSSLSocket(_DeadlineOps, ssl.SSLSocket):
    """The TLS socket (made by the context's ``sslsocket_class``): handshake and records keep the deadline."""

    def do_handshake(self, *args):
        self._arm()
        return super().do_handshake(*args)


class _DeadlineConnection:
    """An urllib3 connection whose socket is a ``_DeadlineSocket`` (and, for https, ``_DeadlineSSLSocket``)."""

    def _new_conn(self) -> socket.socket:
        plain = super()._new_conn()  # connected within urllib3's connect timeout (at most the time left)
        timeout = plain.gettimeout()
        sock = _DeadlineSocket(plain.family, plain.type, plain.proto, fileno=plain.detach())
        sock.settimeout(timeout)  # a socket made from a descriptor starts blocking, but the descriptor is not
        return sock


class _HTTPConnection(_DeadlineConnection, HTTPConnection):
    pass


class _HTTPSConnection(_DeadlineConnection, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


@cache
def _tls_context() -> ssl.SSLContext:
    """The one TLS context of every https pool: loading the CA bundle once, not per connection."""
    return _new_tls_context(certifi.where())


def _new_tls_context(ca_file: str) -> ssl.SSLContext:
    """urllib3's TLS settings, trusting the CAs in ``ca_file``, with sockets that keep the deadline."""
    context = create_urllib3_context()
    context.load_verify_locations(ca_file)
    context.sslsocket_class = _DeadlineSSLSocket
    return context


class PinnedAdapter(HTTPAdapter):
    """Sends each request to the address the egress guard checked, never to a fresh DNS answer.

    requests asks the adapter which urllib3 connection pool serves a request
    (``build_connection_pool_key_attributes``). This adapter answers with a
    pool for the checked IP address instead of the host name, so urllib3 opens
    the socket to that IP and has no name to resolve. For https the pool also
    gets ``server_hostname`` (TLS SNI) and ``assert_hostname`` (certificate
    check) set to the name, and ``add_headers`` sets ``Host`` to the name: the
    service sees exactly the request it would without pinning. Pools are keyed
    by (IP, port, scheme, name), so keep-alive connections are reused only for
    the same checked address.

    A request with no checked address for its host fails closed.
    """

    def __init__(self) -> None:
        super().__init__(pool_connections=10, pool_maxsize=10, max_retries=0)
        self._pin: tuple[Target, str] | None = None

    @contextmanager
    def pinned(self, target: Target, address: str) -> Iterator[None]:
        """Within the block, requests for ``target.host`` connect to ``address`` (one of the checked ones)."""
        self._pin = (target, address)
        try:
            yield
        finally:
            self._pin = None

    def _checked(self, request: requests.PreparedRequest) -> tuple[Target, str]:
        host = urlsplit(request.url).hostname
        if self._pin is None or host != self._pin[0].host:
            raise EgressDenied(f"egress refused: no checked address for host '{host}'")
        return self._pin

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        target, address = self._checked(request)
        host_params["host"] = address
        if host_params["scheme"] == "https":
            pool_kwargs["server_hostname"] = target.host
            pool_kwargs["assert_hostname"] = target.host
            pool_kwargs["ssl_context"] = _tls_context()  # the CA bundle requests names is loaded into it
        return host_params, pool_kwargs

    def add_headers(self, request, **kwargs) -> None:
        target, _ = self._checked(request)
        port = urlsplit(request.url).port
        name = f"[{target.host}]" if ":" in target.host else target.host
        request.headers["Host"] = f"{name}:{port}" if port else name


def _session() -> tuple[requests.Session, PinnedAdapter]:
    pair = getattr(_local, "session", None)
    if pair is None:
        session = requests.Session()
        session.trust_env = False  # proxies from the environment must not reroute calls around the egress guard
        # A per-thread session serves every execution: a cookie one service sets must not reach another call.
        session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        adapter = PinnedAdapter()
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        pair = _local.session = (session, adapter)
    return pair


def send(request: dict, headers: dict[str, str]) -> Outcome:
    """Send a rendered request (docs/normalized-spec.md REQ); ``headers`` are added by Trama."""
    outcome = _send(request, headers)
    return outcome if outcome.failure is None else replace(outcome, error=_masked(outcome.error))


def _send(request: dict, headers: dict[str, str]) -> Outcome:
    session, adapter = _session()
    try:
        prepared = session.prepare_request(_build(request, headers))
    except (requests.RequestException, ValueError) as exc:
        return Outcome(None, "network", f"invalid request: {exc.__class__.__name__}")
    try:
        target = resolve(prepared.url)
    except EgressDenied as exc:
        return Outcome(None, "egress", str(exc))
    timeout = float(request.get("timeout_s") or settings.TRAMA_DEFAULT_REQUEST_TIMEOUT)
    with _deadline(timeout) as deadline:
        for address in target.addresses:
            outcome = _send_to(session, adapter, prepared, target, address, timeout, deadline)
            if outcome is not None:
                return outcome
    raise AssertionError("unreachable: the last address always gives an Outcome")


def _send_to(session, adapter, prepared, target: Target, address: str, timeout: float, deadline: float):
    """The Outcome of calling ``address``; None if it refused the connection and a next address may answer."""
    where = _where(address, target.port)
    try:
        left = deadline - time.monotonic()
        with (
            adapter.pinned(target, address),
            session.send(prepared, timeout=(min(left, 5.0), left), allow_redirects=False, stream=True) as r,
        ):
            return Outcome(_read_response(r), elapsed_ms=r.elapsed.total_seconds() * 1000)
    except EgressDenied as exc:
        return Outcome(None, "egress", str(exc))
    except requests.Timeout as exc:
        return Outcome(None, "timeout", f"timed out after {timeout}s ({_describe(exc)}) calling {where}")
    # The body is read from urllib3 directly (stream=True), so its failures arrive unwrapped by requests.
    except ReadTimeoutError:
        return Outcome(None, "timeout", f"timed out after {timeout}s (reading the response body) calling {where}")
    except DecodeError:
        problem = "the response body could not be decoded (its Content-Encoding does not match the data)"
        return Outcome(None, "network", f"{problem} calling {where}")
    except (ProtocolError, requests.RequestException, OSError) as exc:
        if time.monotonic() >= deadline:  # a socket gave up at the deadline while sending: urllib3 says "aborted"
            return Outcome(None, "timeout", f"timed out after {timeout}s ({_describe(exc)}) calling {where}")
        if isinstance(exc, ProtocolError):
            return Outcome(None, "network", f"{_broken(exc)} calling {where}")
        if address != target.addresses[-1] and _not_connected(exc):
            return None  # nothing was sent: the next checked address may answer
        return Outcome(None, "network", f"{_describe(exc)} calling {where}")
    except ValueError as exc:  # http.client refuses a header or method it cannot encode (its text may quote a secret)
        problem = f"invalid request: {exc.__class__.__name__} (a header, method or URL HTTP cannot carry)"
        return Outcome(None, "network", problem)


def _not_connected(exc: BaseException) -> bool:
    """The connection was refused or unreachable, so the request never left."""
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, NewConnectionError)


def _broken(exc: ProtocolError) -> str:
    """Why reading the response failed: a body shorter than announced, else the connection's error."""
    cut = next((arg for arg in exc.args if isinstance(arg, http.client.IncompleteRead)), None)
    if cut is None:
        return f"the connection broke while reading the response ({_describe(exc)})"
    read = cut.partial if isinstance(cut.partial, int) else len(cut.partial)
    return f"the response was cut short ({read} bytes of body read, {cut.expected} more expected)"


def _build(request: dict, headers: dict[str, str]) -> requests.Request:
    all_headers = {str(k): str(v) for k, v in (request.get("headers") or {}).items()} | headers
    all_headers |= telemetry.trace_headers()
    body = {"json": request["body"]} if "body" in request else {}
    return requests.Request(
        str(request["method"]), str(request["url"]), headers=all_headers, params=request.get("query") or None, **body
    )


def _where(address: str, port: int) -> str:
    """The checked address and port: never the host name, which comes from the URL."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _masked(error: str) -> str:
    """``error`` with every configured secret replaced by ``***``.

    Case-insensitive: a host name is lower-cased (and IDNA-encoded) before
    anything quotes it, so a secret templated into the host shows up lower-case.
    """
    from executions.services import configured_secrets  # late: the write path imports this module

    for secret in configured_secrets().values():
        error = re.sub(re.escape(secret), "***", error, flags=re.IGNORECASE)
    return error


def _describe(exc: BaseException) -> str:
    """What went wrong, without the URL (urllib3 puts the path and query in its messages).

    The innermost OSError's text (e.g. "Connection refused") when there is one,
    else the exception class names from outermost to innermost.
    """
    names, seen, current = [], set(), exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        names.append(current.__class__.__name__)
        if isinstance(current, OSError) and current.strerror:
            return f"{names[0]}: {current.strerror}"
        if isinstance(current, CertificateError) and current.args:  # urllib3's name check: "hostname .. doesn't match"
            return f"{names[0]}: {current.args[0]}"
        inner = getattr(current, "reason", None)
        if not isinstance(inner, BaseException):
            inner = next((arg for arg in reversed(current.args) if isinstance(arg, BaseException)), None)
        current = inner or current.__cause__ or current.__context__
    return " / ".join(dict.fromkeys(names))


def _read_response(resp: requests.Response) -> dict:
    cap = settings.TRAMA_RESPONSE_BODY_CAP
    raw = resp.raw.read(cap + 1, decode_content=True) if cap else b""
    truncated = len(raw) > cap
    headers = {_cut(str(k), _MAX_HEADER_CHARS): _cut(str(v), _MAX_HEADER_CHARS) for k, v in resp.headers.items()}
    headers = dict(list(headers.items())[:_MAX_HEADERS])
    return {"status": resp.status_code, "headers": headers, "body": _decode_body(raw[:cap], truncated)}


def _decode_body(raw: bytes, truncated: bool) -> Any:
    """JSON when the body parses as JSON, else text; bytes that are not UTF-8 become U+FFFD."""
    if not raw:
        return None
    text = _clean(raw.decode("utf-8", errors="replace"))
    if truncated:
        return {"truncated": True, "text": _without_partial_secret(text)}
    try:
        value = json.loads(raw.decode("utf-8", errors="replace"), parse_constant=_refuse, parse_float=_finite)
    except (ValueError, RecursionError):
        return text
    return _safe_json(value, 0, text)


def _cut(text: str, limit: int) -> str:
    text = _clean(text)
    return text if len(text) <= limit else _without_partial_secret(text[:limit])


def _without_partial_secret(text: str) -> str:
    """Drop a tail that is the start of a configured secret.

    Text cut at a cap may end inside an echoed secret; the history scrubs
    (executions.services) whole occurrences only, so the first characters of
    the secret would be kept.
    """
    from executions.services import configured_secrets  # late: the write path imports this module

    for secret in configured_secrets().values():
        for n in range(min(len(secret) - 1, len(text)), 0, -1):
            if text.endswith(secret[:n]):
                text = text[:-n]
                break
    return text


def _refuse(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON that PostgreSQL can store")


def _finite(text: str) -> float:
    """A JSON number as a float; one too large for a float (1e999) is kept as text instead of infinity."""
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text} is out of range")
    return value


def _clean(text: str) -> str:
    """PostgreSQL's jsonb holds no NUL character and no lone UTF-16 surrogate: both become U+FFFD."""
    if "\x00" not in text and not any("\ud800" <= ch <= "\udfff" for ch in text):
        return text
    return "".join("\ufffd" if ch == "\x00" or "\ud800" <= ch <= "\udfff" else ch for ch in text)


def _safe_json(value: Any, depth: int, fallback: str) -> Any:
    """``value`` with every string (keys too) cleaned; ``fallback`` (the text) if nested deeper than allowed."""
    if depth > _MAX_JSON_DEPTH:
        raise _TooDeep
    try:
        if isinstance(value, str):
            return _clean(value)
        if isinstance(value, list):
            return [_safe_json(item, depth + 1, fallback) for item in value]
        if isinstance(value, dict):
            return {_clean(k): _safe_json(v, depth + 1, fallback) for k, v in value.items()}
        return value
    except _TooDeep:
        if depth:
            raise
        return fallback


class _TooDeep(Exception):
    pass


def is_success(request: dict, status: int) -> bool:
    codes = request.get("success_status")
    return status in codes if codes else 200 <= status < 300
