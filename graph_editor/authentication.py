"""Session authentication for the UI's own API calls: Django staff only, CSRF enforced.

The pages under /ui/ call the public API (validate, evaluate, store) from the
browser of a logged-in admin user. DRF's SessionAuthentication checks the CSRF
token for every unsafe method once a session user is found; this class also
ignores sessions of users who are not active staff, so a customer-facing login
(should one ever exist) never gains API access. Listed after the bearer token,
so API clients and the 401 challenge are unchanged.
"""

from drf_spectacular.authentication import SessionScheme
from rest_framework.authentication import SessionAuthentication


class StaffSessionAuthentication(SessionAuthentication):
    def authenticate(self, request):
        result = super().authenticate(request)
        if result is None:
            return None
        user, _ = result
        if not (user.is_active and user.is_staff):
            return None
        return result


class StaffSessionScheme(SessionScheme):
    """Documents the staff session as drf-spectacular's cookieAuth (session cookie + CSRF header)."""

    target_class = "graph_editor.authentication.StaffSessionAuthentication"
