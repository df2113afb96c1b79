"""Secrets offered to templates as ``{{secrets.NAME}}``, and the scrubber that keeps them out of what is kept.

Values come from the ``TRAMA_SECRET_<NAME>`` environment variables, read once per
process: the first use caches them (tests that change the environment call
:func:`reset_configured_secrets`). Whatever Trama stores or shows that a service
or a caller could have filled with a secret — response bodies and headers,
callback bodies, error messages — goes through :func:`scrub_secrets` first.

The scrubber walks the value and masks every string (object keys too), so a
secret holding ``"``, ``\\`` or non-ASCII characters is found as the text it is,
not as whatever JSON escaping would make of it. It also masks the forms a secret
takes when it travelled inside a request and was echoed back or quoted in an
error: JSON-escaped, percent-encoded (query strings, paths) and as an IDNA host
label. A secret cut in half (a body truncated at the cap) is the response
reader's concern (executions.dispatch).
"""

from __future__ import annotations

import json
import os
import re
from functools import cache
from typing import Any
from urllib.parse import quote, quote_plus

from django.conf import settings

# What a secret reads as wherever it is stored or shown (executions.machine.MASKED reads the same).
MASK = "***"
# Shorter values are offered to templates but not searched for in text: masking every "ab" or
# "1" would garble the history, and a secret that short protects nothing.
MIN_SCRUBBED_LENGTH = 4
# Characters requests leaves as they are when it quotes a URL (requests.utils.requote_uri).
_URL_SAFE = "!#$%&'()*+,/:;=?@[]~"
# The server's own key shares the prefix; it signs callbacks and is never offered to templates.
_SERVER_KEY = "TRAMA_SECRET_KEY"


def configured_secrets() -> dict[str, str]:
    """``{{secrets.NAME}}`` values: every non-empty TRAMA_SECRET_<NAME> variable but the server's own key."""
    return dict(_read_secrets())


def reset_configured_secrets() -> None:
    """Forget the cached values, so the next use reads the environment again (tests change it)."""
    _read_secrets.cache_clear()
    _secret_pattern.cache_clear()


def scrub_secrets(value: Any) -> Any:
    """``value`` (any JSON value) with every configured secret masked, keys and numbers included.

    Returns ``value`` itself when no secret is configured; otherwise a copy.
    """
    pattern = _secret_pattern()
    if pattern is None:
        return value
    return _scrub(value, pattern)


@cache
def _read_secrets() -> dict[str, str]:
    prefix = settings.TRAMA_SECRETS_PREFIX
    return {
        name[len(prefix) :]: value
        for name, value in os.environ.items()
        if name.startswith(prefix) and value and name != _SERVER_KEY
    }


@cache
def _secret_pattern() -> re.Pattern | None:
    """One regular expression matching every form of every secret, longest first."""
    forms = {form for secret in _read_secrets().values() for form in _written_forms(secret)}
    forms = {form for form in forms if len(form) >= MIN_SCRUBBED_LENGTH}
    if not forms:
        return None
    return re.compile("|".join(re.escape(form) for form in sorted(forms, key=len, reverse=True)))


def _written_forms(secret: str) -> set[str]:
    """The ways ``secret`` shows up in text: as it is, JSON-escaped, percent-encoded, as a host name."""
    if len(secret) < MIN_SCRUBBED_LENGTH:
        return set()
    forms = {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    forms |= {quote(secret, safe=""), quote_plus(secret, safe=""), quote(secret, safe=_URL_SAFE)}
    forms |= {secret.lower(), _host_label(secret)}  # URL hosts are lower-cased and IDNA-encoded
    return forms


def _host_label(secret: str) -> str:
    try:
        return secret.lower().encode("idna").decode("ascii")
    except UnicodeError:
        return ""


def _scrub(value: Any, pattern: re.Pattern) -> Any:
    if isinstance(value, str):
        return pattern.sub(MASK, value)
    if isinstance(value, dict):
        return {_scrub(key, pattern): _scrub(item, pattern) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(item, pattern) for item in value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        text = json.dumps(value)
        return pattern.sub(MASK, text) if pattern.search(text) else value  # a numeric secret, echoed as a number
    return value
