"""Who may act on executions through the API: one rule, used by every action view.

An API token is an operator credential (``manage.py create_api_token``, shown once,
revocable in the admin): it acts as before. A staff session (the /ui/ pages calling
the API, graph_editor.authentication) is a person, held to what the pages and the
admin ask of them: cancel, retry, wake, re-run and complete need the
``act_on_execution`` permission, as the execution page's buttons and the admin's
actions do. Without this check a staff user refused by the page could do the same
with their session cookie and the CSRF token.
"""

from rest_framework.permissions import BasePermission

from trama_project.models import ApiToken

ACT_ON_EXECUTION = "executions.act_on_execution"


class MayActOnExecutions(BasePermission):
    """Tokens always; a session user only with ``executions.act_on_execution``. A refusal is a 403 naming it."""

    message = (
        "You may look at executions but not act on them: cancel, retry, wake, re-run and complete "
        f"need the permission {ACT_ON_EXECUTION}."
    )

    def has_permission(self, request, view) -> bool:
        if isinstance(request.auth, ApiToken):
            return True
        user = request.user
        return bool(user and user.is_authenticated and user.has_perm(ACT_ON_EXECUTION))
