"""Shared admin pieces: read-only model admins and JSON shown as escaped, indented text."""

import json
from typing import Any

from django.contrib import admin
from django.utils.html import format_html


def pretty_json(value: Any) -> str:
    """JSON indented in a <pre>, escaped by format_html."""
    return format_html('<pre style="white-space: pre-wrap">{}</pre>', json.dumps(value, indent=2, ensure_ascii=False))


class ReadOnlyAdmin(admin.ModelAdmin):
    """For rows only the service layer writes: the admin shows them, and acts through actions that call it."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
