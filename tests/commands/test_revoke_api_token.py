"""revoke_api_token: by name or prefix; a revoked token is a 401."""

import pytest
from rest_framework.test import APIClient

from tests.support.commands import fails, run
from trama_project.models import ApiToken


def authorized(raw: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client.get("/api/v1/definitions/").status_code


@pytest.mark.django_db
def test_revoke_by_name_makes_the_token_401_and_keeps_the_row():
    _, revoked_raw = ApiToken.mint("old-ci")
    _, other_raw = ApiToken.mint("billing")
    assert authorized(revoked_raw) == 200
    assert "revoked 1 token(s): old-ci" in run("revoke_api_token", "old-ci")
    assert authorized(revoked_raw) == 401
    assert authorized(other_raw) == 200
    assert ApiToken.objects.get(name="old-ci").revoked_at is not None
    assert "already revoked" in run("revoke_api_token", "old-ci")


@pytest.mark.django_db
def test_revoke_by_prefix_picks_one_of_several_tokens_with_a_name():
    first, first_raw = ApiToken.mint("ci")
    _, second_raw = ApiToken.mint("ci")
    assert "2 active tokens match 'ci'" in str(fails("revoke_api_token", "ci"))
    run("revoke_api_token", first.prefix)
    assert (authorized(first_raw), authorized(second_raw)) == (401, 200)
    assert "revoked 1 token(s)" in run("revoke_api_token", "ci", "--all")
    assert authorized(second_raw) == 401


@pytest.mark.django_db
def test_revoke_unknown_token_is_an_error():
    assert "no API token has the name or prefix 'nobody'" in str(fails("revoke_api_token", "nobody"))
