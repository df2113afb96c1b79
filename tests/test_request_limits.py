"""Hostile bodies get a clear 4xx, never a 500."""

import pytest

from definitions.models import Definition


@pytest.mark.parametrize("path", ["/api/v1/definitions/", "/api/v1/executions/", "/api/v1/definitions/validate/"])
def test_json_nested_too_deep_for_python_is_a_400(api, path):
    body = "[" * 200_000 + "]" * 200_000
    response = api.post(path, body, content_type="application/json")
    assert response.status_code == 400
    assert "nested too deeply" in response.json()["detail"]
    assert Definition.objects.count() == 0


def test_body_over_the_limit_is_a_413_naming_the_limit(api, settings):
    settings.TRAMA_MAX_REQUEST_BYTES = 2048
    response = api.post("/api/v1/executions/", {"definition": "x", "input": {"blob": "y" * 4096}}, format="json")
    assert response.status_code == 413
    assert "TRAMA_MAX_REQUEST_BYTES" in response.json()["detail"]
