"""Definitions in the admin: searchable and filterable, and strictly read-only.

Rows are immutable (executions pin them), so there is no add, change or delete;
new versions are stored through the API or the graph editor.
"""

import json

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from definitions.diff import diff_specs
from definitions.models import Definition
from trama_project.admin_base import ReadOnlyAdmin, pretty_json


@admin.register(Definition)
class DefinitionAdmin(ReadOnlyAdmin):
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
        "diff_previous",
    )
    readonly_fields = fields

    @admin.display(description="UI")
    def ui_links(self, obj: Definition) -> str:
        """Its page (graph, versions, failure rate), the editor, a start form (stored versions only)."""
        if obj.is_inline:
            return "—"
        page = reverse("ui-definition-version", args=[obj.name, obj.version])
        editor = reverse("ui-editor-version", args=[obj.name, obj.version])
        start = reverse("ui-start", args=[obj.name, obj.version])
        links = '<a href="{}">page</a> · <a href="{}">open in editor</a> · <a href="{}">start execution</a>'
        return format_html(links, page, editor, start)

    @admin.display(description="nodes")
    def node_count(self, obj: Definition) -> int:
        return obj.node_count

    @admin.display(description="normalized spec")
    def spec_json(self, obj: Definition) -> str:
        return pretty_json(obj.spec)

    @admin.display(description="source (as sent)")
    def source_json(self, obj: Definition) -> str:
        return pretty_json(obj.source)

    @admin.display(description="changes since the previous version")
    def diff_previous(self, obj: Definition) -> str:
        """The normalized spec against the previous version of the same name, side by side."""
        previous = (
            Definition.objects.filter(name=obj.name, is_inline=False, version__lt=obj.version)
            .order_by("-version")
            .first()
        )
        if obj.is_inline or previous is None:
            return "— (first version)"
        return diff_table(previous, obj)


def diff_rows(diff: dict) -> list[tuple[str, str, str]]:
    """(what, old side, new side) rows of a diff (definitions.diff.diff_specs), as text."""
    rows = [
        (f"top level: {field}", _cell(change["from"]), _cell(change["to"]))
        for field, change in diff["top_level"].items()
    ]
    rows += [(f"node {node_id}", "—", "added") for node_id in diff["added"]]
    rows += [(f"node {node_id}", "removed", "—") for node_id in diff["removed"]]
    for node in diff["changed"]:
        rows += [(f"{node['id']}.{f}", _cell(c["from"]), _cell(c["to"])) for f, c in node["fields"].items()]
    return rows


def _cell(value) -> str:
    return "(absent)" if value is None else json.dumps(value, ensure_ascii=False)


def diff_table(previous: Definition, current: Definition) -> str:
    """An escaped HTML table of what changed, old version left and new version right, with the API link."""
    rows = diff_rows(diff_specs(previous.spec, current.spec))
    api = reverse("definition-diff", args=[current.name, previous.version, current.version])
    graphs = reverse("ui-diff", args=[current.name, previous.version, current.version])
    if not rows:
        return format_html('No change in the normalized spec since v{} (<a href="{}">API</a>).', previous.version, api)
    body = format_html_join("", "<tr><td><code>{}</code></td><td><pre>{}</pre></td><td><pre>{}</pre></td></tr>", rows)
    return format_html(
        "<table><thead><tr><th>field</th><th>v{}</th><th>v{}</th></tr></thead><tbody>{}</tbody></table>"
        '<p><a href="{}">both graphs side by side</a> · <a href="{}">as JSON (API)</a></p>',
        previous.version,
        current.version,
        body,
        graphs,
        api,
    )
