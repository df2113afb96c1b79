"""Definitions in the admin: searchable and filterable, and strictly read-only.

Rows are immutable (executions pin them), so there is no add, change or delete;
new versions are stored through the API or the graph editor.
"""

import json

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from definitions.models import Definition


def pretty_json(value) -> str:
    """JSON indented in a <pre>, escaped by format_html."""
    return format_html('<pre style="white-space: pre-wrap">{}</pre>', json.dumps(value, indent=2, ensure_ascii=False))


@admin.register(Definition)
class DefinitionAdmin(admin.ModelAdmin):
    list_display = ("name", "version", "kind", "node_count", "is_inline", "created_at", "created_by", "ui_links")
    list_filter = ("kind", "is_inline")
    search_fields = ("name",)
    ordering = ("name", "-version")
    date_hierarchy = "created_at"
    fields = (
        "name",
        "version",
        "kind",
        "node_count",
        "is_inline",
        "digest",
        "created_by",
        "created_at",
        "spec_json",
        "source_json",
        "ui_links",
    )
    readonly_fields = fields

    @admin.display(description="UI")
    def ui_links(self, obj: Definition) -> str:
        """Open this version in the graph editor; start an execution of it (stored versions only)."""
        if obj.is_inline:
            return "—"
        editor = reverse("ui-editor-version", args=[obj.name, obj.version])
        start = reverse("ui-start", args=[obj.name, obj.version])
        return format_html('<a href="{}">open in editor</a> · <a href="{}">start execution</a>', editor, start)

    @admin.display(description="nodes")
    def node_count(self, obj: Definition) -> int:
        return obj.node_count

    @admin.display(description="normalized spec")
    def spec_json(self, obj: Definition) -> str:
        return pretty_json(obj.spec)

    @admin.display(description="source (as sent)")
    def source_json(self, obj: Definition) -> str:
        return pretty_json(obj.source)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
