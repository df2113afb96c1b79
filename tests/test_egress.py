"""The egress guard: which addresses outbound calls may reach, and that the connection goes where it was checked.

Refusals are checked on IP literals and on names whose resolution the test
controls; nothing here ever sends traffic beyond the loopback range (an
allowed private address is checked with ``resolve`` only, never called).
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from executions import dispatch
from executions.egress import EgressDenied, resolve
from executions.services import start_execution
from tests.support import Reply
from tests.support.definitions import store
from tests.support.engine import drive, history
from tests.support.specs import req, retry, task

ALWAYS_REFUSED = [
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
    ("http://169.254.1.1/", "169.254.1.1"),
    ("http://[fe80::1]/", "fe80::1"),
    ("http://[fd00:ec2::254]/", "fd00:ec2::254"),
    ("http://[::ffff:169.254.169.254]/", "::ffff:a9fe:a9fe (169.254.169.254)"),
    ("http://[2002:a9fe:a9fe::1]/", "169.254.169.254"),  # 6to4 wrapping the metadata address
    ("http://[64:ff9b::a9fe:a9fe]/", "169.254.169.254"),  # NAT64 wrapping the metadata address
    ("http://0.0.0.0/", "0.0.0.0"),
    ("http://224.0.0.1/", "224.0.0.1"),
]
INTERNAL = [
    ("http://127.0.0.1/", "127.0.0.1"),
    ("http://127.8.9.10/", "127.8.9.10"),
    ("http://[::1]/", "::1"),
    ("http://10.1.2.3/", "10.1.2.3"),
    ("http://172.16.0.1/", "172.16.0.1"),
    ("http://172.31.255.254/", "172.31.255.254"),
    ("http://192.168.1.1/", "192.168.1.1"),
    ("http://100.64.0.1/", "100.64.0.1"),
    ("http://100.127.255.254/", "100.127.255.254"),
    ("http://[fc00::1]/", "fc00::1"),
    ("http://[fd12:3456::1]/", "fd12:3456::1"),
    ("http://[::ffff:10.0.0.1]/", "10.0.0.1"),
    ("http://[::ffff:127.0.0.1]/", "127.0.0.1"),
]


@pytest.fixture
def allow(settings):
    def set_allow(*items: str) -> None:
        settings.TRAMA_EGRESS_ALLOW = list(items)

    set_allow()
    return set_allow


@pytest.fixture
def fake_dns(monkeypatch):
    """Answer getaddrinfo for chosen names from a script (one answer per lookup); other names resolve normally.

    Every lookup of a scripted name is recorded, so a test can see how often it was resolved.
    """
    real = socket.getaddrinfo
    answers: dict[str, list[list[str]]] = {}
    lookups: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if name not in answers:
            return real(host, port, *args, **kwargs)
        lookups.append(name)
        script = answers[name]
        addresses = script.pop(0) if len(script) > 1 else script[0]
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, int(port or 0)))
            for a in addresses
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)

    class FakeDns:
        def answer(self, name: str, *rounds: list[str]) -> None:
            answers[name] = list(rounds)

        def lookups_of(self, name: str) -> int:
            return lookups.count(name)

    return FakeDns()


# --- Which addresses ------------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "named"), ALWAYS_REFUSED)
def test_link_local_and_metadata_addresses_are_refused_even_when_allowed(allow, url, named):
    allow("0.0.0.0/0", "::/0", "169.254.0.0/16", "fe80::/10", "fd00:ec2::254")
    with pytest.raises(EgressDenied) as refused:
        resolve(url)
    assert named in str(refused.value)
    assert "never allowed" in str(refused.value)


@pytest.mark.parametrize(("url", "named"), INTERNAL)
def test_internal_addresses_are_refused_by_default_naming_the_address(allow, url, named):
    with pytest.raises(EgressDenied) as refused:
        resolve(url)
    assert named in str(refused.value)
    assert "TRAMA_EGRESS_ALLOW" in str(refused.value)


@pytest.mark.parametrize(
    ("url", "cidr", "address"),
    [
        ("http://10.1.2.3:8080/x", "10.0.0.0/8", "10.1.2.3"),
        ("http://172.20.0.5/", "172.16.0.0/12", "172.20.0.5"),
        ("http://192.168.7.7/", "192.168.7.7", "192.168.7.7"),
        ("http://100.64.3.4/", "100.64.0.0/10", "100.64.3.4"),
        ("http://[fd12::9]/", "fc00::/7", "fd12::9"),
        ("http://[::ffff:10.9.9.9]/", "10.0.0.0/8", "::ffff:a09:909"),
    ],
)
def test_internal_address_is_allowed_by_a_cidr_in_the_allow_list(allow, url, cidr, address):
    with pytest.raises(EgressDenied):
        resolve(url)
    allow(cidr)
    assert resolve(url).addresses == (address,)  # checked only: no connection is made


def test_a_cidr_allows_only_its_own_range(allow):
    allow("10.20.0.0/16")
    assert resolve("http://10.20.1.1/").address == "10.20.1.1"
    with pytest.raises(EgressDenied, match=r"10\.21\.1\.1"):
        resolve("http://10.21.1.1/")


def test_public_address_needs_no_allow_entry(allow):
    assert resolve("https://93.184.216.34/").addresses == ("93.184.216.34",)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/", "gopher://127.0.0.1:70/", "data:,x"])
def test_only_http_and_https_are_allowed(allow, url):
    allow("127.0.0.1")
    with pytest.raises(EgressDenied, match="http and https only"):
        resolve(url)


def test_localhost_resolving_to_loopback_is_refused_unless_its_name_is_allowed(allow, service, db):
    url = service.url.replace("127.0.0.1", "localhost") + "/ping"
    outcome = dispatch.send(req("GET", url), {})
    assert outcome.failure == "egress"
    assert "'localhost' resolves to 127.0.0.1" in outcome.error
    assert service.requests == []

    allow("localhost")
    outcome = dispatch.send(req("GET", url), {})
    assert outcome.failure is None and outcome.response["status"] == 200
    assert [(r.method, r.path, r.header("Host")) for r in service.requests] == [
        ("GET", "/ping", f"localhost:{service.url.rsplit(':', 1)[1]}")
    ]


def test_a_name_with_one_internal_address_among_public_ones_is_refused(allow, fake_dns):
    fake_dns.answer("mixed.example", ["93.184.216.34", "10.0.0.7"])
    with pytest.raises(EgressDenied) as refused:
        resolve("http://mixed.example/")
    assert "'mixed.example' resolves to 10.0.0.7" in str(refused.value)


def test_a_name_resolving_to_the_metadata_address_is_refused_even_when_the_name_is_allowed(allow, fake_dns):
    allow("evil.example")
    fake_dns.answer("evil.example", ["::ffff:169.254.169.254"])
    with pytest.raises(EgressDenied, match=r"169\.254\.169\.254.*never allowed"):
        resolve("http://evil.example/")


def test_a_name_that_does_not_resolve_is_refused_naming_it(allow):
    with pytest.raises(EgressDenied, match=r"'no-such-host\.invalid' does not resolve"):
        resolve("http://no-such-host.invalid/")


# --- Where the connection goes --------------------------------------------------------------------


def test_the_connection_goes_to_the_checked_address_not_a_second_dns_answer(allow, fake_dns, service, db):
    """DNS rebinding: the first answer passes the check, a later one would point elsewhere.

    127.0.0.2 is loopback too but nothing listens there, so a second lookup would
    make the call fail; it reaches the service because the checked address is used.
    """
    allow("rebind.test")
    fake_dns.answer("rebind.test", ["127.0.0.1"], ["127.0.0.2"])
    port = service.url.rsplit(":", 1)[1]
    outcome = dispatch.send(req("POST", f"http://rebind.test:{port}/orders", body={"n": 1}), {})
    assert outcome.failure is None, outcome.error
    assert outcome.response["status"] == 200
    assert fake_dns.lookups_of("rebind.test") == 1  # the guard's lookup, and no other
    assert [(r.path, r.header("Host"), r.body) for r in service.requests] == [
        ("/orders", f"rebind.test:{port}", {"n": 1})
    ]
    # The next call is checked afresh: now the name points at 127.0.0.2, where nothing answers.
    outcome = dispatch.send(req("POST", f"http://rebind.test:{port}/orders", body={"n": 2}), {})
    assert outcome.failure == "network" and "127.0.0.2" in outcome.error
    assert len(service.requests) == 1


def test_a_second_checked_address_is_tried_when_the_first_refuses_the_connection(allow, fake_dns, service, db):
    allow("127.0.0.0/8")
    fake_dns.answer("two.test", ["127.0.0.2", "127.0.0.1"])
    port = service.url.rsplit(":", 1)[1]
    outcome = dispatch.send(req("GET", f"http://two.test:{port}/x"), {})
    assert outcome.failure is None, outcome.error
    assert len(service.requests) == 1


def make_certificate(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for ``name`` (a DNS name, or an address as ``IP:127.0.0.1``) and its key."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    alt_name = name if name.startswith("IP:") else f"DNS:{name}"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test",
         "-addext", f"subjectAltName={alt_name}", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def tls_service(tmp_path_factory):
    """An https service on 127.0.0.1 whose certificate names only ``pinned.test``; records the SNI it saw."""
    cert, key = make_certificate(tmp_path_factory.mktemp("tls"), "pinned.test")
    seen: list[tuple[str | None, str | None]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append((self.connection.server_name, self.headers.get("Host")))
            body = b'{"tls": true}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    def remember_sni(sock, name, ctx):
        sock.server_name = name

    context.sni_callback = remember_sni
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], str(cert), seen
    server.shutdown()
    server.server_close()


@pytest.fixture
def trust(monkeypatch):
    """Make dispatch trust a CA file (the test certificate) instead of the public CAs."""

    def use(ca_file: str) -> None:
        monkeypatch.setattr(dispatch, "_tls_context", lambda: dispatch._new_tls_context(ca_file))

    return use


def test_https_to_a_pinned_address_sends_sni_and_verifies_the_certificate_for_the_name(
    allow, fake_dns, tls_service, trust, db
):
    port, ca, seen = tls_service
    trust(ca)
    allow("pinned.test", "other.test")
    fake_dns.answer("pinned.test", ["127.0.0.1"], ["127.0.0.2"])
    outcome = dispatch.send(req("GET", f"https://pinned.test:{port}/"), {})
    assert outcome.failure is None, outcome.error
    assert outcome.response["status"] == 200
    assert seen[-1] == ("pinned.test", f"pinned.test:{port}")

    # The same address under a name the certificate does not carry: verification fails, nothing is read.
    fake_dns.answer("other.test", ["127.0.0.1"])
    outcome = dispatch.send(req("GET", f"https://other.test:{port}/"), {})
    assert outcome.failure == "network"
    assert outcome.error == f"TLS failed (hostname 'other.test' doesn't match 'pinned.test') calling 127.0.0.1:{port}"


# --- Redirects, cookies, error text ---------------------------------------------------------------


def test_a_redirect_is_an_answer_not_followed(allow, service, db):
    allow("127.0.0.1")
    service.script("GET", "/start", Reply(302, None, headers={"Location": "http://169.254.169.254/latest/"}))
    outcome = dispatch.send(req("GET", service.url + "/start"), {})
    assert outcome.response["status"] == 302
    assert outcome.response["headers"]["location"] == "http://169.254.169.254/latest/"
    assert [r.path for r in service.requests] == ["/start"]
    assert not dispatch.is_success(req("GET", "x"), 302)
    assert dispatch.is_success(req("GET", "x", success_status=[302]), 302)


def test_a_cookie_one_service_sets_is_not_sent_on_later_calls(allow, service, db):
    allow("127.0.0.1")
    service.script("GET", "/login", Reply(200, {"ok": True}, headers={"Set-Cookie": "session=victim; Path=/"}))
    dispatch.send(req("GET", service.url + "/login"), {})
    dispatch.send(req("GET", service.url + "/other"), {})
    assert [r.header("Cookie") for r in service.requests] == [None, None]


def test_network_error_names_the_address_but_not_the_query(allow, db):
    allow("127.0.0.1")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    outcome = dispatch.send(req("GET", f"http://127.0.0.1:{port}/p", query={"api_key": "hush-hush-123"}), {})
    assert outcome.failure == "network"
    assert outcome.error == f"could not connect (Connection refused) calling 127.0.0.1:{port}"


HOST_SECRET = "Tr4ma-H0st-s3cret"  # mixed case: a host name is lower-cased before anything quotes it


@pytest.fixture
def host_secret(monkeypatch):
    monkeypatch.setenv("TRAMA_SECRET_TENANT", HOST_SECRET)
    return HOST_SECRET


def assert_no_secret(text: str) -> None:
    assert HOST_SECRET.lower() not in text.lower(), text


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_network_error_names_the_checked_address_not_a_host_that_holds_a_secret(allow, fake_dns, host_secret, db):
    host = f"{host_secret}.tenant.test"
    allow(host)
    fake_dns.answer(host.lower(), ["127.0.0.1"])
    port = closed_port()
    outcome = dispatch.send(req("GET", f"http://user:{host_secret}@{host}:{port}/p"), {})
    assert outcome.failure == "network"
    assert outcome.error == f"could not connect (Connection refused) calling 127.0.0.1:{port}"


def test_a_timeout_names_the_checked_address_not_a_host_that_holds_a_secret(allow, fake_dns, host_secret, service, db):
    host = f"{host_secret}.tenant.test"
    allow(host)
    fake_dns.answer(host.lower(), ["127.0.0.1"])
    service.script("GET", "/slow", Reply(200, {"late": True}, delay_s=1.0))
    port = service.url.rsplit(":", 1)[1]
    outcome = dispatch.send(req("GET", f"http://{host}:{port}/slow", timeout_s=0.3), {})
    assert outcome.failure == "timeout"
    assert_no_secret(outcome.error)
    assert outcome.error.endswith(f"calling 127.0.0.1:{port}")


def test_an_egress_refusal_masks_a_secret_in_the_host(allow, host_secret, db):
    outcome = dispatch.send(req("GET", f"http://{host_secret}.invalid/"), {})
    assert outcome.failure == "egress"
    assert outcome.error.startswith("egress refused: host '***.invalid' does not resolve")


def test_a_certificate_error_masks_a_secret_in_the_host(allow, fake_dns, tls_service, trust, host_secret, db):
    port, ca, _ = tls_service
    trust(ca)
    host = f"{host_secret}.tenant.test"
    allow(host)
    fake_dns.answer(host.lower(), ["127.0.0.1"])
    outcome = dispatch.send(req("GET", f"https://{host}:{port}/"), {})
    assert outcome.failure == "network"
    assert (
        outcome.error == f"TLS failed (hostname '***.tenant.test' doesn't match 'pinned.test') calling 127.0.0.1:{port}"
    )


# --- In an execution ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_refused_call_fails_the_step_with_the_refusal_in_the_history(allow, api, service):
    definition = store(
        {"a": task(req("GET", "http://[::ffff:169.254.169.254]/latest/meta-data/"), retry=retry(3))}, "a"
    )
    execution = drive(start_execution(definition, {})[0])
    assert execution.status == "COMPENSATED"  # nothing to compensate: the first node failed
    assert history(execution) == [("a", "forward", 1, "failed")]  # an egress refusal is not retried
    steps = api.get(f"/api/v1/executions/{execution.pk}/steps/").json()
    assert steps[0]["error"]["failure"] == "egress"
    assert "169.254.169.254" in steps[0]["error"]["message"]
    assert "never allowed" in steps[0]["error"]["message"]
    detail = api.get(f"/api/v1/executions/{execution.pk}/").json()
    assert "169.254.169.254" in detail["error"]["message"]


@pytest.mark.django_db(transaction=True)
def test_a_templated_url_cannot_reach_a_file(allow, service):
    allow("127.0.0.1")
    definition = store({"a": task(req("GET", "{{payload.target}}"), on_failure="fail")}, "a")
    execution = drive(start_execution(definition, {"target": "file:///etc/passwd"})[0])
    assert execution.status == "FAILED"
    step = execution.steps.get()
    assert step.error["failure"] == "egress" and "'file'" in step.error["message"]
    assert step.response_body is None
