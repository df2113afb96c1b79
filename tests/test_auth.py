"""Bearer-token authentication and the create_api_token command."""

import io

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from trama_project.models import ApiToken, hash_token

pytestmark = pytest.mark.django_db

URL = "/api/v1/definitions/"


def get_with(header: str | None):
    client = APIClient()
    if header is not None:
        client.credentials(HTTP_AUTHORIZATION=header)
    return client.get(URL)


def test_no_header_answers_401_with_challenge():
    response = get_with(None)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["detail"]


def test_wrong_scheme_answers_401():
    _, raw = ApiToken.mint("svc")
    assert get_with(f"Token {raw}").status_code == 401
    assert get_with("Basic dXNlcjpwYXNz").status_code == 401


def test_empty_bearer_answers_401():
    assert get_with("Bearer ").status_code == 401


def test_unknown_token_answers_401():
    response = get_with("Bearer trama_not-a-real-token")
    assert response.status_code == 401
    assert "Invalid" in response.json()["detail"]


def test_revoked_token_answers_401():
    token, raw = ApiToken.mint("svc")
    assert get_with(f"Bearer {raw}").status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())
    assert get_with(f"Bearer {raw}").status_code == 401


def test_valid_token_answers_200():
    _, raw = ApiToken.mint("svc")
    assert get_with(f"Bearer {raw}").status_code == 200


def test_create_api_token_prints_only_a_working_token():
    out = io.StringIO()
    call_command("create_api_token", "billing-service", stdout=out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    raw = lines[0]
    token = ApiToken.objects.get(name="billing-service")
    assert token.token_hash == hash_token(raw) and raw not in token.token_hash
    assert get_with(f"Bearer {raw}").status_code == 200
