"""Shared fixtures: an API client holding a real token."""

import pytest
from rest_framework.test import APIClient

from trama_project.models import ApiToken


@pytest.fixture
def api(db) -> APIClient:
    _, raw = ApiToken.mint("tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client
