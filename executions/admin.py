"""Executions and steps in the admin. Read-only: every change goes through executions/services/
(the cancel and retry actions call it, like the API does)."""

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from executions import services
from executions.models import Execution, ExecutionStatus, Step
from trama_project.admin_base import ReadOnlyAdmin, pretty_json

_BADGE_COLOURS = {
    ExecutionStatus.SUCCEEDED: "#2e7d32",
    ExecutionStatus.COMPENSATED: "#ef6c00",
    ExecutionStatus.FAILED: "#c62828",
    ExecutionStatus.CANCELLED: "#616161",
    ExecutionStatus.WAITING: "#6a1b9a",
    ExecutionStatus.SLEEPING: "#1565c0",
}


class StepInline(admin.TabularInline):
    model = Step
    extra = 0
    can_delete = False
    fields = (
        "seq",
        "node_id",
        "node_type",
        "phase",
        "attempt",
        "status",
        "response_status",
        "error",
        "started_at",
        "finished_at",
    )
    readonly_fields = fields
    ordering = ("seq",)

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Execution)
class ExecutionAdmin(ReadOnlyAdmin):
    list_display = ("id", "definition", "status_badge", "current_node", "created_at", "finished_at", "timeline_link")
    list_filter = ("status", "definition__name", "created_at")
    list_select_related = ("definition",)
    search_fields = ("=id", "idempotency_key")
    date_hierarchy = "created_at"
    raw_id_fields = ("definition",)
    inlines = [StepInline]
    actions = ["cancel_selected", "retry_selected"]
    fields = (
        "id",
        "definition",
        "status",
        "current_node",
        "input_json",
        "output_json",
        "error_json",
        "created_at",
        "started_at",
        "finished_at",
        "due_at",
        "idempotency_key",
        "created_by",
        "timeline_link",
    )
    readonly_fields = fields

    @admin.display(description="timeline")
    def timeline_link(self, obj: Execution) -> str:
        return format_html('<a href="{}">timeline</a>', reverse("ui-execution", args=[obj.pk]))

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: Execution) -> str:
        colour = _BADGE_COLOURS.get(obj.status, "#455a64")
        return format_html('<b style="color:{}">{}</b>', colour, obj.status)

    @admin.display(description="input")
    def input_json(self, obj: Execution) -> str:
        return pretty_json(obj.input)

    @admin.display(description="output")
    def output_json(self, obj: Execution) -> str:
        return pretty_json(obj.output)

    @admin.display(description="error")
    def error_json(self, obj: Execution) -> str:
        return pretty_json(obj.error)

    @admin.action(description="Cancel selected executions (with compensation)")
    def cancel_selected(self, request, queryset):
        self._act(request, queryset, lambda pk: services.cancel_execution(pk, compensate=True), "cancel")

    @admin.action(description="Retry selected FAILED executions")
    def retry_selected(self, request, queryset):
        self._act(request, queryset, services.retry_execution, "retry")

    def _act(self, request, queryset, action, verb: str) -> None:
        done, refused = 0, []
        for execution in queryset.only("pk", "status"):
            try:
                action(execution.pk)
                done += 1
            except services.TransitionRefused:
                refused.append(f"{execution.pk} ({execution.status})")
        if done:
            self.message_user(request, f"{verb}: {done} execution(s) done.", messages.SUCCESS)
        if refused:
            self.message_user(request, f"could not {verb}: {', '.join(refused)}", messages.WARNING)


@admin.register(Step)
class StepAdmin(ReadOnlyAdmin):
    list_display = ("execution", "seq", "node_id", "phase", "attempt", "status", "response_status", "started_at")
    list_filter = ("status", "phase", "node_type")
    list_select_related = ("execution",)
    search_fields = ("=execution__id", "node_id")
    raw_id_fields = ("execution",)
    fields = (
        "execution",
        "seq",
        "node_id",
        "node_type",
        "phase",
        "attempt",
        "status",
        "request_json",
        "response_status",
        "response_headers",
        "response_json",
        "detail",
        "error",
        "started_at",
        "finished_at",
    )
    readonly_fields = fields

    @admin.display(description="request (secrets masked)")
    def request_json(self, obj: Step) -> str:
        return pretty_json(obj.request)

    @admin.display(description="response body")
    def response_json(self, obj: Step) -> str:
        return pretty_json(obj.response_body)
