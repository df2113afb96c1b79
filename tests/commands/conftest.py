"""Fixtures of the command tests."""

import pytest


@pytest.fixture
def egress(settings):
    settings.TRAMA_EGRESS_ALLOW = ["127.0.0.1"]
