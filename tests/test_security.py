"""Secrets never surface, access control holds, and the production settings pass ``check --deploy``.

The secret tests run real executions that send a ``{{secrets.NAME}}`` value in
a header, the URL query and the body to a service that echoes it back in its
response body and headers (and fails, and is compensated, and is unreachable),
then grep every place Trama shows or keeps data: the rows, the API, the admin
and UI pages, the logs and the spans.
"""

from __future__ import annotations

import json
import logging
import os
import secrets as pysecrets
import socket
import string
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from definitions.models import Definition
from executions import services
from executions.callback_tokens import mint_callback_token
from executions.models import Execution, Step
from executions.secrets import configured_secrets, reset_configured_secrets, scrub_secrets
from executions.services import start_execution
from tests.support import Reply
from tests.support.definitions import store
from tests.support.engine import drive
from tests.support.specs import req, task
from trama_project.models import ApiToken

SECRET = "Tr4ma-s3cret-7c1e5b9a"
BASE_DIR = Path(__file__).resolve().parent.parent


# --- Secrets ---------------------------------------------------------------------------------------


@pytest.fixture
def with_secret(monkeypatch, settings, exporter, caplog):
    monkeypatch.setenv("TRAMA_SECRET_API_KEY", SECRET)
    settings.TRAMA_EGRESS_ALLOW = ["127.0.0.1"]
    exporter.clear()
    caplog.set_level(logging.DEBUG)
    return exporter


def echo(recorded) -> dict:
    """The service's answer: everything it received, the secret included."""
    return {"headers": dict(recorded.headers), "query": recorded.query, "body": recorded.body, "path": recorded.path}


def echoing(status: int) -> Reply:
    return Reply(status, echo, headers={"X-Echo-Key": SECRET, "Set-Cookie": f"key={SECRET}; Path=/"})


def secret_request(method: str, url: str) -> dict:
    return req(
        method,
        url + "?token={{secrets.API_KEY}}",
        headers={"Authorization": "Bearer {{secrets.API_KEY}}", "X-Key": "{{secrets.API_KEY}}"},
        query={"k": "{{secrets.API_KEY}}"},
        body={"key": "{{secrets.API_KEY}}", "nested": ["key is {{secrets.API_KEY}}!"], "id": "{{payload.id}}"},
    )


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_secret_executions(service) -> list[Execution]:
    """Three executions using the secret: compensated after an echoed 500, succeeded, and unreachable."""
    service.default("POST", "/a", echoing(200))
    service.default("POST", "/b", echoing(500))
    service.default("DELETE", "/a", echoing(200))
    service.default("POST", "/ok", echoing(201))
    compensated = store(
        {
            "a": task(secret_request("POST", service.url + "/a"), next="b",
                      compensation=secret_request("DELETE", service.url + "/a")),
            "b": task(secret_request("POST", service.url + "/b")),
        },
        "a", name="leaky-compensated",
    )  # fmt: skip
    succeeded = store({"ok": task(secret_request("POST", service.url + "/ok"))}, "ok", name="leaky-ok")
    unreachable = store(
        {"down": task(secret_request("POST", f"http://127.0.0.1:{closed_port()}/down"), on_failure="fail")},
        "down",
        name="leaky-down",
    )
    executions = [drive(start_execution(d, {"id": 7})[0]) for d in (compensated, succeeded, unreachable)]
    assert [e.status for e in executions] == ["COMPENSATED", "SUCCEEDED", "FAILED"]
    return executions


def rows_text(execution: Execution) -> str:
    rows = [*Execution.objects.filter(pk=execution.pk).values(), *Step.objects.filter(execution=execution).values()]
    return json.dumps(rows, default=str)


def test_the_service_receives_the_secret_in_header_query_and_body(service, with_secret, transactional_db):
    run_secret_executions(service)
    seen = service.calls("POST", "/a")[0]
    assert seen.header("Authorization") == f"Bearer {SECRET}" and seen.header("X-Key") == SECRET
    assert seen.query == {"token": SECRET, "k": SECRET}
    assert seen.body == {"key": SECRET, "nested": [f"key is {SECRET}!"], "id": 7}
    assert [r.method for r in service.calls(path="/a")] == ["POST", "DELETE"]  # the compensation used it too


def test_no_row_holds_the_secret(service, with_secret, transactional_db):
    for execution in run_secret_executions(service):
        text = rows_text(execution)
        assert SECRET not in text, text
        assert "***" in text  # masked where it was used


def test_the_history_shows_where_the_secret_went_masked(service, with_secret, transactional_db):
    compensated, _, unreachable = run_secret_executions(service)
    first = compensated.steps.get(node_id="a", phase="forward")
    assert first.request["headers"] == {"Authorization": "Bearer ***", "X-Key": "***"}
    assert first.request["url"].endswith("/a?token=***") and first.request["query"] == {"k": "***"}
    assert first.response_body["body"]["key"] == "***" and first.response_body["query"] == {"token": "***", "k": "***"}
    assert first.response_headers["x-echo-key"] == "***"
    down = unreachable.steps.get()
    assert down.error["failure"] == "network" and "Connection refused" in down.error["message"]


def test_the_api_never_shows_the_secret(service, with_secret, api, transactional_db):
    executions = run_secret_executions(service)
    pages = [api.get("/api/v1/executions/")]
    for execution in executions:
        pages += [api.get(f"/api/v1/executions/{execution.pk}/"), api.get(f"/api/v1/executions/{execution.pk}/steps/")]
    assert [p.status_code for p in pages] == [200] * len(pages)
    for page in pages:
        assert SECRET not in page.content.decode(), page.request["PATH_INFO"]


def test_the_admin_and_ui_pages_never_show_the_secret(service, with_secret, admin_client, transactional_db):
    executions = run_secret_executions(service)
    urls = ["/admin/executions/execution/", "/admin/executions/step/"]
    for execution in executions:
        urls += [
            f"/admin/executions/execution/{execution.pk}/change/",
            f"/ui/executions/{execution.pk}/",
            f"/ui/executions/{execution.pk}/data/",
        ]
        urls += [f"/admin/executions/step/{pk}/change/" for pk in execution.steps.values_list("pk", flat=True)]
    for url in urls:
        page = admin_client.get(url)
        assert page.status_code == 200, url
        assert SECRET not in page.content.decode(), url


def test_logs_at_debug_never_show_the_secret(service, with_secret, caplog, transactional_db):
    run_secret_executions(service)
    assert caplog.records  # the state-change lines were captured
    for record in caplog.records:
        assert SECRET not in record.getMessage(), record.name
        assert SECRET not in json.dumps(record.__dict__, default=str), record.name


def test_spans_never_show_the_secret(service, with_secret, transactional_db):
    run_secret_executions(service)
    spans = with_secret.get_finished_spans()
    assert len(spans) >= 6
    for span in spans:
        assert SECRET not in span.to_json(), span.name


def test_a_body_cut_at_the_cap_keeps_no_start_of_the_secret(service, with_secret, settings, transactional_db):
    prefix = '{"padding": "' + "x" * 20 + '", "echo": "'
    settings.TRAMA_RESPONSE_BODY_CAP = len(prefix) + 9  # the cut falls inside the echoed secret
    service.default("POST", "/a", Reply(200, lambda r: {"padding": "x" * 20, "echo": SECRET}))
    execution = drive(
        start_execution(store({"a": task(secret_request("POST", service.url + "/a"))}, "a"), {"id": 1})[0]
    )
    step = execution.steps.get()
    assert execution.status == "SUCCEEDED", step.error
    assert step.response_body["truncated"] is True
    assert step.response_body["text"] == prefix
    assert SECRET[:9] not in rows_text(execution)


def test_secrets_are_read_once_until_the_cache_is_reset(monkeypatch):
    monkeypatch.setenv("TRAMA_SECRET_FIRST", "first-value")
    monkeypatch.setenv("TRAMA_SECRET_KEY", "server-key-never-offered")
    first = configured_secrets()
    assert first["FIRST"] == "first-value" and "KEY" not in first
    monkeypatch.setenv("TRAMA_SECRET_SECOND", "second-value")
    assert "SECOND" not in configured_secrets()  # the environment is not read again
    reset_configured_secrets()
    assert configured_secrets()["SECOND"] == "second-value"
    assert services.configured_secrets is configured_secrets  # the old import path still works


def test_scrubbing_walks_keys_values_and_numbers(monkeypatch):
    monkeypatch.setenv("TRAMA_SECRET_PIN", "90210")
    monkeypatch.setenv("TRAMA_SECRET_TOKEN", 'a"b\\cé')
    body = {'a"b\\cé': ['x a"b\\cé y', 90210, 1.5, True, None], "zip": "90210-1"}
    assert scrub_secrets(body) == {"***": ["x *** y", "***", 1.5, True, None], "zip": "***-1"}


def test_scrubbing_finds_a_secret_escaped_percent_encoded_or_as_a_host(monkeypatch):
    secret = 'Pa"s\\sé'
    monkeypatch.setenv("TRAMA_SECRET_ODD", secret)
    monkeypatch.setenv("TRAMA_SECRET_LABEL", "Hôte-Secret")
    forms = [json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1], "Pa%22s%5Cs%C3%A9", 'pa"s\\sé']
    assert [scrub_secrets(f"<{form}>") for form in forms] == ["<***>"] * len(forms)
    assert scrub_secrets("host 'xn--hte-secret-rbb.example'") == "host '***.example'"


def test_a_secret_shorter_than_four_characters_is_offered_but_not_scrubbed(monkeypatch):
    monkeypatch.setenv("TRAMA_SECRET_TINY", "abc")
    assert configured_secrets()["TINY"] == "abc"
    assert scrub_secrets({"text": "abcabc"}) == {"text": "abcabc"}


# --- Access ----------------------------------------------------------------------------------------


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user("ops", password="pw-for-tests-1", is_staff=True)


@pytest.fixture
def customer(django_user_model):
    return django_user_model.objects.create_user("customer", password="pw-for-tests-2", is_staff=False)


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/admin/", "/admin/executions/execution/", "/admin/definitions/definition/"])
def test_admin_pages_need_a_staff_login(customer, url):
    client = Client()
    assert client.get(url).status_code == 302  # anonymous: to the login page
    client.force_login(customer)
    answer = client.get(url)
    assert answer.status_code == 302 and answer["Location"].startswith("/admin/login/")


@pytest.mark.django_db
def test_admin_login_refuses_a_non_staff_user(customer):
    client = Client()
    answer = client.post("/admin/login/", {"username": "customer", "password": "pw-for-tests-2"})
    assert answer.status_code == 200 and "_auth_user_id" not in client.session
    assert client.get("/admin/executions/execution/").status_code == 302


@pytest.mark.django_db
def test_ui_pages_and_api_refuse_a_non_staff_session(customer):
    client = Client()
    client.force_login(customer)
    assert client.get("/ui/editor/").status_code == 302
    assert client.get("/api/v1/definitions/").status_code == 401


@pytest.mark.django_db
def test_a_staff_session_write_without_csrf_token_is_refused(staff):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    request = {"method": "GET", "url": "https://example.com/"}
    definition = {"name": "csrf", "kind": "saga", "steps": [{"id": "a", "request": request}]}
    refused = client.post("/api/v1/definitions/", definition, content_type="application/json")
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["detail"]
    assert not Definition.objects.filter(name="csrf").exists()

    client.get("/admin/")  # any page with a form sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    stored = client.post("/api/v1/definitions/", definition, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert stored.status_code == 201
    assert client.get("/api/v1/definitions/csrf/").status_code == 200


@pytest.mark.django_db
def test_a_bearer_token_write_needs_no_csrf_token(api):
    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION=api._credentials["HTTP_AUTHORIZATION"])
    answer = client.post("/api/v1/expressions/evaluate/", {"rule": {"==": [1, 1]}, "data": {}}, format="json")
    assert answer.status_code == 200 and answer.json() == {"result": True}


@pytest.mark.django_db
def test_a_revoked_token_can_neither_read_nor_write():
    token, raw = ApiToken.mint("leaver")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/api/v1/executions/").status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())
    assert client.get("/api/v1/executions/").status_code == 401
    write = client.post("/api/v1/executions/", {"definition": "x", "input": {}}, format="json")
    assert write.status_code == 401
    assert Execution.objects.count() == 0


@pytest.fixture
def waiting_execution(db):
    definition = store({"pay": task(req("POST", "https://example.com/pay"))}, "pay", name="cb")
    execution, _ = start_execution(definition, {})
    token = mint_callback_token(execution.pk, "pay", 1, timezone.now() + timedelta(minutes=5))
    return execution, token


def test_the_callback_endpoint_ignores_api_tokens(api, waiting_execution):
    execution, token = waiting_execution
    forged = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    for url, headers in [
        ("/api/v1/callbacks/", {}),
        (f"/api/v1/callbacks/{forged}/", {}),
        ("/api/v1/callbacks/", {"HTTP_X_TRAMA_CALLBACK_TOKEN": "not-a-token"}),
    ]:
        answer = api.post(url, {"status": "succeeded"}, format="json", **headers)
        assert answer.status_code == 403, url
    execution.refresh_from_db()
    assert execution.status == "PENDING" and execution.pending_callback is None


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_the_callback_endpoint_accepts_only_post(api, waiting_execution, method):
    execution, token = waiting_execution
    answer = getattr(APIClient(), method)(f"/api/v1/callbacks/{token}/")
    assert answer.status_code == 405
    execution.refresh_from_db()
    assert execution.status == "PENDING" and execution.pending_callback is None


# --- Production settings ---------------------------------------------------------------------------


def deploy_env(**extra: str) -> dict[str, str]:
    alphabet = string.ascii_letters + string.digits + "!@#%^&*(-_=+)"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRAMA_", "DJANGO_"))}
    return (
        env
        | {
            "DATABASE_URL": os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/trama"),
            "TRAMA_SECRET_KEY": "".join(pysecrets.choice(alphabet) for _ in range(50)),
            "TRAMA_SSL_REDIRECT": "1",
            "TRAMA_SECURE_COOKIES": "1",
            "TRAMA_HSTS_SECONDS": "31536000",
            "TRAMA_ALLOWED_HOSTS": "trama.example.com",
        }
        | extra
    )


def check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess:
    command = [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"]
    return subprocess.run(command, cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120)


def test_check_deploy_is_clean_with_the_production_settings():
    result = check_deploy(deploy_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_flags_the_development_defaults():
    env = deploy_env()
    for name in ("TRAMA_SSL_REDIRECT", "TRAMA_SECURE_COOKIES", "TRAMA_HSTS_SECONDS"):
        env.pop(name)
    result = check_deploy(env)
    assert result.returncode != 0
    for check in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert check in result.stderr, check
