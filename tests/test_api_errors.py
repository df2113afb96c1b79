"""The words of the API's errors: what a user reads when a name, an id, a URL or a body is wrong.

Each answer is JSON with a message that says what was wrong and what to send
instead: the closest stored definition names, the same 404 for an unknown and
a malformed execution id, the trailing slash a POST is missing, the media type
the API takes, and what is too big.
"""

import uuid

import pytest
from django.test import Client

from tests.support.definitions import DefinitionFactory

pytestmark = pytest.mark.django_db

API = "/api/v1"


@pytest.fixture
def stored(db) -> None:
    """order-flow v1 and v2, order-saga v1, payments v1."""
    DefinitionFactory(name="order-flow", version=1)
    DefinitionFactory(name="order-flow", version=2)
    DefinitionFactory(name="order-saga", version=1)
    DefinitionFactory(name="payments", version=1)


# --- Unknown definition names: the closest stored names ------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/definitions/order-flw/",
        "/definitions/order-flw/versions/",
        "/definitions/order-flw/versions/1/",
        "/definitions/order-flw/versions/1/diff/2/",
    ],
)
def test_an_unknown_name_answers_404_naming_the_closest_stored_names(api, stored, path):
    answer = api.get(API + path)
    assert answer.status_code == 404
    assert answer.json() == {"detail": "No definition named 'order-flw'. Did you mean 'order-flow' or 'order-saga'?"}


def test_an_unknown_name_with_nothing_close_says_where_the_names_are(api, stored):
    answer = api.get(f"{API}/definitions/zzz/")
    assert answer.status_code == 404
    assert answer.json() == {"detail": "No definition named 'zzz'. GET /api/v1/definitions/ lists the stored ones."}


def test_a_missing_version_of_a_stored_name_names_the_latest(api, stored):
    answer = api.get(f"{API}/definitions/order-flow/versions/7/")
    assert answer.status_code == 404
    assert answer.json() == {"detail": "Definition 'order-flow' has no version 7; the latest is 2."}


def test_simulating_an_unknown_name_answers_the_same_404(api, stored):
    answer = api.post(f"{API}/definitions/simulate/", {"name": "paymnts"}, format="json")
    assert answer.status_code == 404
    assert answer.json() == {"detail": "No definition named 'paymnts'. Did you mean 'payments'?"}


def test_starting_an_unknown_name_is_a_400_on_definition_naming_the_closest(api, stored):
    answer = api.post(f"{API}/executions/", {"definition": "ordr-saga", "input": {}}, format="json")
    assert answer.status_code == 400
    message = "No definition named 'ordr-saga'. Did you mean 'order-saga'?"
    assert answer.json() == {"detail": message, "errors": [{"path": "definition", "message": message}]}


def test_a_misspelt_start_field_is_a_400_naming_it_and_the_field_meant(api, stored):
    answer = api.post(f"{API}/executions/", {"definiton": "payments", "input": {}}, format="json")
    assert answer.status_code == 400
    assert answer.json()["errors"] == [{"path": "definiton", "message": "unknown field; did you mean 'definition'?"}]


def test_starting_a_missing_version_is_a_400_on_version_naming_the_latest(api, stored):
    answer = api.post(f"{API}/executions/", {"definition": "payments", "version": 3, "input": {}}, format="json")
    assert answer.status_code == 400
    message = "Definition 'payments' has no version 3; the latest is 1."
    assert answer.json() == {"detail": message, "errors": [{"path": "version", "message": message}]}


# --- Execution ids ----------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", "steps/"])
def test_an_unknown_and_a_malformed_execution_id_answer_the_same_404(api, suffix):
    unknown = api.get(f"{API}/executions/{uuid.uuid4()}/{suffix}")
    malformed = api.get(f"{API}/executions/not-a-uuid/{suffix}")
    assert (unknown.status_code, malformed.status_code) == (404, 404)
    expected = {"detail": "No execution with that id (execution ids are UUIDs)."}
    assert unknown.json() == expected
    assert malformed.json() == expected


@pytest.mark.parametrize("action", ["cancel", "retry", "wake"])
def test_an_action_on_an_unknown_execution_answers_the_same_404(api, action):
    answer = api.post(f"{API}/executions/{uuid.uuid4()}/{action}/", {}, format="json")
    assert answer.status_code == 404
    assert answer.json() == {"detail": "No execution with that id (execution ids are UUIDs)."}


# --- The trailing slash -----------------------------------------------------------------------------


@pytest.fixture
def curl() -> Client:
    """A client like curl: CSRF checks on (no cookie, no token), as for any API client outside a browser."""
    return Client(enforce_csrf_checks=True)


@pytest.mark.parametrize(
    "path", ["/api/v1/executions", "/api/v1/definitions", "/api/v1/definitions/validate", "/api/v1/callbacks"]
)
def test_a_post_without_the_trailing_slash_answers_json_naming_the_url_to_use(curl, path):
    answer = curl.post(path, {"definition": "x", "input": {}}, content_type="application/json")
    assert answer.status_code == 404
    assert answer["Content-Type"] == "application/json"
    message = f"use the trailing slash: POST {path}/"
    assert answer.json() == {"detail": message, "errors": [{"path": "", "message": message}]}


def test_other_writes_without_the_trailing_slash_name_their_method(curl):
    answer = curl.delete(f"{API}/executions/{uuid.uuid4()}/cancel")
    assert answer.status_code == 404
    assert answer.json()["detail"] == f"use the trailing slash: DELETE {answer.request['PATH_INFO']}/"


def test_a_get_without_the_trailing_slash_is_still_redirected(curl):
    answer = curl.get(f"{API}/executions", {"status": "FAILED"})
    assert answer.status_code == 301
    assert answer["Location"] == f"{API}/executions/?status=FAILED"


def test_a_path_without_the_slash_that_is_no_endpoint_either_is_the_plain_json_404(curl):
    answer = curl.post(f"{API}/nothing-here", {}, content_type="application/json")
    assert answer.status_code == 404
    assert answer.json() == {"detail": "no API endpoint at /api/v1/nothing-here"}


def test_pages_outside_the_api_keep_django_redirects(admin_client):
    answer = admin_client.post("/admin/executions/execution", {})
    assert answer.status_code == 301
    assert answer["Location"] == "/admin/executions/execution/"


# --- Bodies -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/definitions/", "/executions/", "/definitions/validate/", "/expressions/evaluate/"])
def test_a_body_that_is_not_json_answers_415_naming_application_json(api, path):
    answer = api.post(API + path, "definition=orders", content_type="application/x-www-form-urlencoded")
    assert answer.status_code == 415
    assert answer.json() == {
        "detail": "unsupported media type 'application/x-www-form-urlencoded': "
        "the API takes application/json (send Content-Type: application/json)"
    }


def test_an_input_over_the_limit_names_input_its_size_and_the_setting(api, stored, settings):
    settings.TRAMA_MAX_INPUT_BYTES = 200
    body = {"definition": "payments", "input": {"blob": "x" * 300}}
    answer = api.post(f"{API}/executions/", body, format="json")
    assert answer.status_code == 400
    message = "input is 312 bytes of JSON; the limit is 200 (TRAMA_MAX_INPUT_BYTES)"
    assert answer.json() == {"detail": message, "errors": [{"path": "input", "message": message}]}
