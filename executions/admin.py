"""Executions and steps in the admin. Read-only: every change goes through executions/services/
(the cancel, retry, retry-skipping and wake actions call the same functions as the API)."""

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from executions import services
from executions.models import Execution, ExecutionStatus, OperatorAction, Step
from executions.permissions import ACT_ON_EXECUTION
from trama_project.admin_base import ReadOnlyAdmin, pretty_json

_BADGE_COLOURS = {
    ExecutionStatus.SUCCEEDED: "#2e7d32",
    ExecutionStatus.COMPENSATED: "#ef6c00",
    ExecutionStatus.FAILED: "#c62828",
    ExecutionStatus.CANCELLED: "#616161",
    ExecutionStatus.WAITING: "#6a1b9a",
    ExecutionStatus.SLEEPING: "#1565c0",
}

# What the operator reads when an action went through: (one execution, several), {n} = how many.
_CANCELLING = (
    "Cancelling {n} execution: its compensations run, then it ends CANCELLED.",
    "Cancelling {n} executions: their compensations run, then they end CANCELLED.",
)
_RETRYING = ("Retrying {n} execution from the step that failed.", "Retrying {n} executions from the step that failed.")
_SKIPPING = (
    "Retrying {n} execution, skipping the compensation that failed.",
    "Retrying {n} executions, skipping the compensation that failed.",
)
_WOKE = (
    "Woke {n} execution: it goes on at the node after its sleep.",
    "Woke {n} executions: they go on at the node after their sleep.",
)


def _by(request) -> str:
    """Who acts, as the OperatorAction records it."""
    return request.user.get_username()


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


class OperatorActionInline(admin.TabularInline):
    """Who did what to the execution, and when (the page's event history shows the same rows)."""

    model = OperatorAction
    extra = 0
    can_delete = False
    fields = ("at", "kind", "actor", "detail")
    readonly_fields = fields
    ordering = ("at",)

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
    inlines = [StepInline, OperatorActionInline]
    actions = ["cancel_selected", "retry_selected", "retry_skipping_compensation_selected", "wake_selected"]
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

    @admin.action(description="Cancel selected executions (compensating first)", permissions=["act"])
    def cancel_selected(self, request, queryset) -> None:
        by = _by(request)
        self._act(request, queryset, "cancel", lambda pk: services.cancel_execution(pk, by=by), _CANCELLING)

    @admin.action(description="Retry selected FAILED executions from the step that failed", permissions=["act"])
    def retry_selected(self, request, queryset) -> None:
        by = _by(request)
        self._act(request, queryset, "retry", lambda pk: services.retry_execution(pk, skip=False, by=by), _RETRYING)

    @admin.action(
        description="Retry selected FAILED executions, skipping the compensation that failed", permissions=["act"]
    )
    def retry_skipping_compensation_selected(self, request, queryset) -> None:
        by = _by(request)
        self._act(request, queryset, "retry", lambda pk: services.retry_execution(pk, skip=True, by=by), _SKIPPING)

    @admin.action(description="Wake selected SLEEPING executions (end the sleep now)", permissions=["act"])
    def wake_selected(self, request, queryset) -> None:
        by = _by(request)
        self._act(request, queryset, "wake", lambda pk: services.wake_execution(pk, by=by), _WOKE)

    def has_act_permission(self, request) -> bool:
        """The actions change executions: they need ``act_on_execution``, not only the view permission."""
        return request.user.has_perm(ACT_ON_EXECUTION)

    def _act(
        self, request, queryset, verb: str, action: Callable[[Any], Execution], done_text: tuple[str, str]
    ) -> None:
        """Apply ``action`` to each selected execution; one refusal does not stop the others.

        Each refusal is its own message naming the execution, its status and the
        machine's reason, so the operator can tell which ones to look at.
        """
        done = 0
        # values_list, not only(): the changelist queryset select_related()s the definition.
        for pk, status in queryset.values_list("pk", "status"):
            try:
                action(pk)
            except services.TransitionRefused as exc:
                reason = str(exc) if status in str(exc) else f"{exc} (it is {status})"
                self.message_user(request, f"Could not {verb} execution {pk}: {reason}.", messages.WARNING)
            except Execution.DoesNotExist:
                self.message_user(request, f"Could not {verb} execution {pk}: it no longer exists.", messages.WARNING)
            else:
                done += 1
        if done:
            self.message_user(request, done_text[done != 1].format(n=done), messages.SUCCESS)


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
