"""Outbound HTTP: the one place Trama calls users' services.

``send`` calls through urllib3 directly: one process-wide, thread-safe,
keep-alive pool per (scheme, checked address, port, host name), no redirects
(a 3xx is an answer like any other), no cookies, no proxies from the
environment, and a cap on how much of a response is read and kept. It returns
an ``Outcome`` instead of raising: the state machine decides what a failure
means.

Where the call goes: the egress guard resolves the host and checks every
address; the pool connects to the checked address, so the name is never
resolved a second time (DNS rebinding). The request still names the host:
``Host`` is the name, and for https the TLS name (SNI) and the certificate
check are the name too, so the service sees exactly the request it would
without pinning. If an address refuses the connection, the next checked one
is tried.

How long it may take: ``timeout_s`` (else TRAMA_DEFAULT_REQUEST_TIMEOUT)
bounds the whole call (connect, TLS handshake, send, headers and body), not
each socket read; see ``_deadline``.

What errors say: never the URL nor the host name (a template may have put a
secret in either), only the checked address and port, and any configured
secret left in a message (an egress refusal names the host) is masked.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import ssl
import threading
import time
from base64 import b64encode
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cache
from typing import Any
from urllib.parse import unquote, urlencode

import certifi
from django.conf import settings
from urllib3 import BaseHTTPResponse, HTTPHeaderDict, PoolManager, Timeout
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    DecodeError,
    HTTPError,
    LocationParseError,
    NewConnectionError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.util import parse_url
from urllib3.util.ssl_ import ALPN_PROTOCOLS, create_urllib3_context
from urllib3.util.ssl_match_hostname import CertificateError

from executions import telemetry
from executions.egress import EgressDenied, Target, resolve
from executions.secrets import configured_secrets

_MAX_HEADERS = 50
_MAX_HEADER_CHARS = 4096
# Deeper JSON is kept as text: templates, rules and PostgreSQL all recurse over it.
_MAX_JSON_DEPTH = 200
# A connect waits at most this long, so an address that never answers leaves time for the next checked one.
_CONNECT_TIMEOUT_CAP = 5.0
# Idle keep-alive connections kept per pool: one for each thread of a worker calling the same service at
# once (workers run up to ~100 calls in threads). Past it, connections still open, and close after their call.
_POOL_MAXSIZE = 128
# Pools kept, least recently used closed first: each is one (scheme, address, port, host name).
_MAX_POOLS = 500
_DEFAULT_HEADERS = {"User-Agent": "Trama", "Accept": "*/*", "Accept-Encoding": "gzip, deflate"}
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_LINE_BREAK_OR_NUL = re.compile("[\r\n\x00]")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


@dataclass(frozen=True)
class Outcome:
    """``failure`` is None when a response came back (whatever its status), else
    "network", "timeout" or "egress"."""

    response: dict | None
    failure: str | None = None
    error: str = ""
    elapsed_ms: float = 0.0


def send(request: dict, headers: dict[str, str]) -> Outcome:
    """Send a rendered request (docs/normalized-spec.md REQ); ``headers`` are added by Trama. Never raises."""
    outcome = _send(request, headers)
    return outcome if outcome.failure is None else replace(outcome, error=_masked(outcome.error))


def _send(request: dict, headers: dict[str, str]) -> Outcome:
    try:
        wire = _wire(request, headers)
    except _Invalid as exc:
        return Outcome(None, "network", f"invalid request: {exc}")
    try:
        target = resolve(wire.url)
    except EgressDenied as exc:
        return Outcome(None, "egress", str(exc))
    timeout = float(request.get("timeout_s") or settings.TRAMA_DEFAULT_REQUEST_TIMEOUT)
    wire.headers["Host"] = _host_header(target.host, wire.port)
    started = time.monotonic()
    with _deadline(timeout) as deadline:
        for address in target.addresses:
            outcome = _call(wire, target, address, timeout, deadline)
            if outcome is not None:
                return replace(outcome, elapsed_ms=(time.monotonic() - started) * 1000)
    raise AssertionError("unreachable: the last address always gives an Outcome")


def _call(wire: _Wire, target: Target, address: str, timeout: float, deadline: float) -> Outcome | None:
    """The Outcome of calling ``address``; None if it refused the connection and a next address may answer."""
    where = _where(address, target.port)
    left = deadline - time.monotonic()
    if left <= 0:  # the addresses before this one used the whole deadline
        return Outcome(None, "timeout", f"timed out after {timeout}s (connecting) calling {where}")
    reading = False
    try:
        pool = _pool(wire.scheme, address, target.port, target.host)
        response = pool.urlopen(
            wire.method, wire.path, body=wire.body, headers=wire.headers, retries=False, redirect=False,
            assert_same_host=False, preload_content=False, decode_content=True,
            timeout=Timeout(connect=min(left, _CONNECT_TIMEOUT_CAP), read=left),
        )  # fmt: skip
        reading = True
        return Outcome(_read_response(response))
    except NewConnectionError as exc:  # (a subclass of ConnectTimeoutError, but not a timeout)
        if address != target.addresses[-1]:
            return None  # nothing was sent: the next checked address may answer
        return Outcome(None, "network", f"could not connect ({_reason(exc)}) calling {where}")
    except (HTTPError, OSError) as exc:
        # Past the deadline, whatever urllib3 calls it ("connection aborted" when a send gave up) is a timeout.
        if isinstance(exc, ConnectTimeoutError | ReadTimeoutError | TimeoutError) or time.monotonic() >= deadline:
            phase = "reading the response body" if reading else "waiting for the response"
            phase = "connecting" if isinstance(exc, ConnectTimeoutError) else phase
            return Outcome(None, "timeout", f"timed out after {timeout}s ({phase}) calling {where}")
        return Outcome(None, "network", f"{_failed(exc)} calling {where}")
    except ValueError as exc:  # http.client refusing what the checks in _wire let through; its text may quote a secret
        return Outcome(None, "network", f"invalid request: HTTP cannot carry it ({exc.__class__.__name__})")


def _failed(exc: HTTPError | OSError) -> str:
    """What went wrong on the wire, in words that carry no part of the URL."""
    if isinstance(exc, SSLError):
        return f"TLS failed ({_reason(exc)})"
    if isinstance(exc, DecodeError):
        return "the response body could not be decoded (its Content-Encoding does not match the data)"
    cut = next((arg for arg in exc.args if isinstance(arg, http.client.IncompleteRead)), None)
    if cut is not None:
        read = cut.partial if isinstance(cut.partial, int) else len(cut.partial)
        return f"the response was cut short ({read} bytes of body read, {cut.expected} more expected)"
    return f"the connection broke ({_reason(exc)})"


def _reason(exc: BaseException) -> str:
    """The innermost cause in its own words, never urllib3's (which quote the URL).

    An OSError's text ("Connection refused"), a certificate name mismatch, or
    http.client's complaint about the answer; else the exception class names
    from outermost to innermost.
    """
    names, seen, current = [], set(), exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        names.append(current.__class__.__name__)
        if isinstance(current, OSError) and current.strerror:
            return current.strerror
        if isinstance(current, (CertificateError, http.client.HTTPException, http.client.RemoteDisconnected)):
            return str(current)[:200] or names[-1]
        inner = getattr(current, "reason", None)
        if not isinstance(inner, BaseException):
            inner = next((arg for arg in reversed(current.args) if isinstance(arg, BaseException)), None)
        current = inner or current.__cause__ or current.__context__
    return " / ".join(dict.fromkeys(names))


def _where(address: str, port: int) -> str:
    """The checked address and port: never the host name, which comes from the URL."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _masked(error: str) -> str:
    """``error`` with every configured secret replaced by ``***``.

    Case-insensitive: a host name is lower-cased (and IDNA-encoded) before
    anything quotes it, so a secret templated into the host shows up lower-case.
    """
    for secret in configured_secrets().values():
        error = re.sub(re.escape(secret), "***", error, flags=re.IGNORECASE)
    return error


# --- The request on the wire -------------------------------------------------------------------------


class _Invalid(Exception):
    """The rendered request cannot be sent; the message names the field and why (never its value)."""


@dataclass
class _Wire:
    scheme: str
    url: str  # normalized (host IDNA-encoded, unsafe characters percent-encoded): what the egress guard checks
    port: int | None  # as the URL says it (None: the scheme's default), for the Host header
    method: str
    path: str  # path and query, as sent on the request line
    headers: HTTPHeaderDict
    body: bytes | None


def _wire(request: dict, trama_headers: dict[str, str]) -> _Wire:
    method = str(request["method"]).upper()
    if not _TOKEN.fullmatch(method):
        raise _Invalid("the method is not an HTTP token")
    try:
        url = parse_url(str(request["url"]))
    except LocationParseError:
        raise _Invalid("the url cannot be parsed") from None
    headers = HTTPHeaderDict(_DEFAULT_HEADERS)
    for name, value in (request.get("headers") or {}).items():
        headers[_header_name(str(name))] = _header_value(str(name), str(value))
    headers.update(trama_headers)
    headers.update(telemetry.trace_headers())
    if url.auth:  # user:password@ in the URL is Basic authentication, as a browser or curl would send it
        headers["Authorization"] = "Basic " + b64encode(_latin1(unquote(url.auth), "the url's user:password")).decode()
    body = _body(request, headers)
    query = "&".join(part for part in (url.query, _encoded_query(request.get("query"))) if part)
    path = (url.path or "/") + (f"?{query}" if query else "")
    return _Wire(url.scheme or "", url.url, url.port, method, path, headers, body)


def _body(request: dict, headers: HTTPHeaderDict) -> bytes | None:
    """The rendered body as JSON, or (``body_format: "text"``) as the raw text it rendered to."""
    if request.get("body") is None:
        return None
    if request.get("body_format") == "text":
        # The original (Ktor's setBody(String)) sends text/plain unless the author set a Content-Type.
        headers.setdefault("Content-Type", "text/plain; charset=UTF-8")
        return str(request["body"]).encode()
    headers.setdefault("Content-Type", "application/json")
    try:
        return json.dumps(request["body"], allow_nan=False).encode()
    except ValueError:
        raise _Invalid("the body holds a number JSON cannot carry (NaN or Infinity)") from None


def _encoded_query(query: dict | None) -> str:
    """``{"k": "v", "many": [1, 2], "skipped": None}`` as ``k=v&many=1&many=2``."""
    pairs = []
    for name, value in (query or {}).items():
        for item in value if isinstance(value, list) else [value]:
            if item is not None:
                pairs.append((str(name), str(item)))
    return urlencode(pairs)


def _header_name(name: str) -> str:
    if not _TOKEN.fullmatch(name):
        raise _Invalid(f"header name {name[:100]!r} is not an HTTP token")
    return name


def _header_value(name: str, value: str) -> str:
    if _LINE_BREAK_OR_NUL.search(value):
        raise _Invalid(f"header {name!r} holds a line break or NUL character")
    _latin1(value, f"header {name!r}")
    return value


def _latin1(text: str, field: str) -> bytes:
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        raise _Invalid(f"{field} holds characters HTTP headers cannot carry (outside Latin-1)") from None


def _host_header(host: str, port: int | None) -> str:
    name = f"[{host}]" if ":" in host else host
    return f"{name}:{port}" if port else name


# --- Pools, and the deadline of a call -----------------------------------------------------------------
# A socket timeout bounds one operation: a service that drips a byte every half second would hold a
# call, and the thread making it, for as long as it likes. Every socket Trama calls services on
# instead sets its timeout to the time left before each blocking operation (connect, TLS handshake,
# send, every read), so ``timeout_s`` bounds the whole call. The deadline is the calling thread's:
# any number of calls can be in flight in threads of one process, each with its own.

_call_state = threading.local()  # .deadline: the time.monotonic() by which this thread's current call must be over


@contextmanager
def _deadline(seconds: float) -> Iterator[float]:
    """Within the block, this thread's sockets give up at ``seconds`` from now; yields that time."""
    _call_state.deadline = time.monotonic() + seconds
    try:
        yield _call_state.deadline
    finally:
        _call_state.deadline = None


class _DeadlineOps:
    """Socket operations that wait no longer than the calling thread's deadline (none outside a call)."""

    def _arm(self) -> None:
        deadline = getattr(_call_state, "deadline", None)
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


# No proxies (a PoolManager never reads the environment), no retries, no redirects.
_pools = PoolManager(num_pools=_MAX_POOLS, maxsize=_POOL_MAXSIZE, retries=False)
_pools.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


def _pool(scheme: str, address: str, port: int, host: str) -> HTTPConnectionPool:
    """The keep-alive pool to ``address`` (checked for ``host``): one per (scheme, address, port, host name).

    ``server_hostname`` keys the pool by the name for http too (urllib3 drops it there); for https it is
    the TLS name (SNI), and ``assert_hostname`` the name the certificate must carry.
    """
    if scheme == "http":
        return _pools.connection_from_host(address, port, "http", {"server_hostname": host})
    tls = {"server_hostname": host, "assert_hostname": host, "ssl_context": _tls_context()}
    return _pools.connection_from_host(address, port, "https", tls)


@cache
def _tls_context() -> ssl.SSLContext:
    """The one TLS context of every https pool: the CA bundle is loaded once, not per connection."""
    return _new_tls_context(certifi.where())


def _new_tls_context(ca_file: str) -> ssl.SSLContext:
    """urllib3's TLS settings, trusting the CAs in ``ca_file``, with sockets that keep the deadline."""
    context = create_urllib3_context()
    context.load_verify_locations(ca_file)
    context.sslsocket_class = _DeadlineSSLSocket
    context.set_alpn_protocols(ALPN_PROTOCOLS)
    # urllib3 sets ALPN again for each new connection. On a context other threads are making connections
    # from, OpenSSL would free the list one of them may be copying: it is set once, above.
    context.set_alpn_protocols = lambda protocols: None
    return context


# --- The answer ------------------------------------------------------------------------------------------


def _read_response(response: BaseHTTPResponse) -> dict:
    """Status, headers and body (up to TRAMA_RESPONSE_BODY_CAP); the connection goes back to the pool."""
    cap = settings.TRAMA_RESPONSE_BODY_CAP
    try:
        raw = response.read(cap + 1, decode_content=True) if cap else b""
    finally:
        if not response.closed:
            response.close()  # the body was not read to its end: the connection cannot carry another call
        response.release_conn()
    truncated = len(raw) > cap
    headers = {}
    for name in list(response.headers)[:_MAX_HEADERS]:
        headers[_cut(name, _MAX_HEADER_CHARS)] = _cut(response.headers[name], _MAX_HEADER_CHARS)
    return {"status": response.status, "headers": headers, "body": _decode_body(raw[:cap], truncated)}


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
    return _UNSTORABLE.sub("\ufffd", text)


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
