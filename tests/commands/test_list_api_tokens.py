"""list_api_tokens: names and prefixes, never the token."""

import json

import pytest

from tests.support.commands import run
from trama_project.models import ApiToken


@pytest.mark.django_db
def test_list_api_tokens_shows_name_and_prefix_but_never_the_token():
    token, raw = ApiToken.mint("billing")
    table = run("list_api_tokens")
    as_json = json.loads(run("list_api_tokens", "--json"))
    assert "billing" in table and token.prefix in table
    assert raw not in table and raw not in json.dumps(as_json) and token.token_hash not in table
    assert as_json == [{"name": "billing", "prefix": token.prefix, "created": as_json[0]["created"], "revoked": None}]


@pytest.mark.django_db
def test_list_api_tokens_says_when_there_are_none():
    assert "no API tokens" in run("list_api_tokens")
