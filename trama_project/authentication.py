"""Bearer-token authentication for the API: ``Authorization: Bearer <token>``."""

import base64
import binascii

from django.contrib.auth.models import AnonymousUser
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from trama_project.models import ApiToken


class TokenUser(AnonymousUser):
    """The principal behind an API token: authenticated, but not a Django user."""

    def __init__(self, token: ApiToken):
        self.token = token
        self.username = f"token:{token.name}"

    @property
    def is_authenticated(self) -> bool:  # type: ignore[override]
        return True

    @property
    def is_anonymous(self) -> bool:  # type: ignore[override]
        return False

    def __str__(self) -> str:
        return self.username


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, raw = header.partition(" ")
        if scheme.lower() != "bearer" or not raw.strip():
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <token>'.")
        return user_for_token(raw.strip())

    def authenticate_header(self, request) -> str:
        # Makes DRF answer 401 (not 403) to requests without credentials.
        return 'Bearer realm="api"'


def user_for_token(raw: str) -> tuple[TokenUser, ApiToken]:
    token = ApiToken.objects.find_active(raw)
    if token is None:
        raise exceptions.AuthenticationFailed("Invalid or revoked API token.")
    return TokenUser(token), token


class BasicTokenAuthentication(authentication.BaseAuthentication):
    """The same API token sent as the password of HTTP Basic (the user name is ignored).

    Only the original Trama's API (executions/compat/) takes it: its clients set no
    headers of their own, but every HTTP library sends a base URL's credentials
    (``http://trama:<token>@host``) as Basic. It is the token, checked the same way.
    """

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            _, separator, raw = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise exceptions.AuthenticationFailed("Authorization: Basic must carry base64 of 'user:<API token>'.")
        if not separator or not raw:
            raise exceptions.AuthenticationFailed("Authorization: Basic must carry the API token as its password.")
        return user_for_token(raw)

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


class BasicTokenScheme(OpenApiAuthenticationExtension):
    target_class = "trama_project.authentication.BasicTokenAuthentication"
    name = "basicToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "basic", "description": "any user name; the API token as the password"}


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "trama_project.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "create one with manage.py create_api_token NAME"}
