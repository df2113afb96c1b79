"""The OpenAPI schema and the docs page: public, OpenAPI 3, self-hosted assets only."""

import re

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

DEFINITION_PATHS = [
    "/api/v1/definitions/",
    "/api/v1/definitions/validate/",
    "/api/v1/definitions/{name}/",
    "/api/v1/definitions/{name}/versions/",
    "/api/v1/definitions/{name}/versions/{version}/",
    "/api/v1/expressions/evaluate/",
]


@pytest.fixture
def schema() -> dict:
    response = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def test_schema_is_public_openapi_3(schema):
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] == "Trama API"


def test_schema_documents_the_definitions_paths(schema):
    for path in DEFINITION_PATHS:
        assert path in schema["paths"], path
    store = schema["paths"]["/api/v1/definitions/"]["post"]["responses"]
    assert {"201", "400", "401", "413", "415"} <= set(store)
    assert store["400"]["content"]["application/json"]["schema"]["$ref"].endswith("/Error")
    latest = schema["paths"]["/api/v1/definitions/{name}/"]["get"]["responses"]
    assert {"200", "401", "404"} <= set(latest)


def test_schema_declares_bearer_auth(schema):
    assert schema["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_schema_validates_without_warnings():
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")


def test_docs_page_uses_only_local_assets():
    response = APIClient().get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    assert not re.search(r"""https?://""", html), re.findall(r"""https?://[^"' ]+""", html)
