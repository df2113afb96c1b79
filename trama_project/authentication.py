"""Bearer-token authentication for the API: ``Authorization: Bearer <token>``."""

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
        token = ApiToken.objects.find_active(raw.strip())
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API token.")
        return TokenUser(token), token

    def authenticate_header(self, request) -> str:
        # Makes DRF answer 401 (not 403) to requests without credentials.
        return 'Bearer realm="api"'


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "trama_project.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "create one with manage.py create_api_token NAME"}
