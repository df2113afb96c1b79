"""Callback tokens: the one place that mints and checks them.

A token names one attempt of one async node of one execution and carries its
expiry. It is signed with HMAC-SHA256 (django.core.signing) over the first of
``TRAMA_CALLBACK_KEYS``; every key in the list verifies, so an operator rolls
the key by putting a new one first and dropping the old one once no execution
waits on it. Signature checks are constant-time (django.core.signing).
"""

from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.core import signing

_SALT = "trama.callbacks.v1"


class TokenInvalid(Exception):
    """Bad signature or malformed token (answer 403)."""


class TokenExpired(Exception):
    """A genuine token past its expiry (answer 410)."""

    def __init__(self, claims: "CallbackClaims"):
        super().__init__("callback token expired")
        self.claims = claims


@dataclass(frozen=True)
class CallbackClaims:
    execution_id: str
    node_id: str
    attempt: int
    expires_at: datetime


def mint_callback_token(execution_id: str, node_id: str, attempt: int, deadline: datetime) -> str:
    """A token for one attempt, valid until the node's ``deadline`` plus TRAMA_CALLBACK_GRACE_SECONDS.

    The grace lets a callback that arrives just after a timeout get a precise
    409 ("no longer waits") instead of a bare 410; after it, the token is 410.
    """
    keys = settings.TRAMA_CALLBACK_KEYS
    expires_at = deadline.timestamp() + settings.TRAMA_CALLBACK_GRACE_SECONDS
    payload = {"e": str(execution_id), "n": node_id, "a": attempt, "x": int(expires_at)}
    return signing.dumps(payload, key=keys[0], salt=_SALT, compress=False)


def read_callback_token(token: str, now: datetime | None = None) -> CallbackClaims:
    """The token's claims; raises TokenInvalid (forged, tampered, garbage) or TokenExpired."""
    keys = settings.TRAMA_CALLBACK_KEYS
    try:
        payload = signing.loads(token, key=keys[0], fallback_keys=keys[1:], salt=_SALT)
        claims = CallbackClaims(
            execution_id=str(payload["e"]),
            node_id=str(payload["n"]),
            attempt=int(payload["a"]),
            expires_at=datetime.fromtimestamp(int(payload["x"]), tz=UTC),
        )
    except (signing.BadSignature, KeyError, TypeError, ValueError) as exc:
        raise TokenInvalid("callback token is not valid") from exc
    if (now or datetime.now(tz=UTC)) >= claims.expires_at:
        raise TokenExpired(claims)
    return claims


def callback_url(token: str) -> str:
    return f"{settings.TRAMA_PUBLIC_URL}/api/v1/callbacks/{token}/"


def original_callback_url(execution_id: str, node_id: str) -> str:
    """The original Trama's callback route (its ``CallbackUrlFactory.kt``); the token goes in ``X-Callback-Token``."""
    return f"{settings.TRAMA_PUBLIC_URL}/workflows/{execution_id}/node/{node_id}/callback"


def callback_context(token: str, original_route: tuple[str, str] | None = None) -> dict:
    """What templates see as ``callback`` (``{{callback.url}}``, ``{{callback.token}}``) for one async attempt.

    ``original_route`` (execution id, node id) is given for a definition in the original's
    format: its services call back the way the original tells them to (executions/compat/).
    """
    url = original_callback_url(*original_route) if original_route else callback_url(token)
    return {"url": url, "token": token}
