"""API tokens in the admin: see and revoke them; only ``manage.py create_api_token`` mints one.

The raw token is never stored, so the admin shows the prefix and the read-only hash.
"""

from django.contrib import admin, messages
from django.utils import timezone

from trama_project.models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "prefix", "created_at", "revoked_at", "is_active")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    search_fields = ("name", "prefix")
    fields = ("name", "prefix", "token_hash", "created_at", "revoked_at")
    readonly_fields = ("prefix", "token_hash", "created_at")
    actions = ("revoke",)

    @admin.display(boolean=True, description="active")
    def is_active(self, obj: ApiToken) -> bool:
        return obj.revoked_at is None

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset) -> None:
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {count} token(s).", messages.SUCCESS)

    def has_add_permission(self, request) -> bool:
        # A token is shown once, at creation: mint it with `manage.py create_api_token NAME`.
        return False
