"""The original's request and answer shapes (its ``openapi.json`` and ``saga/SagaExecution.kt``), camelCase as there."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from definitions.models import Definition
from definitions.services import version_label
from executions.compat.statuses import ORIGINAL_STATUSES, original_status
from executions.models import Execution, Step, StepPhase

STATUS_HELP = f"One of {', '.join(ORIGINAL_STATUSES)} (docs/upstream.md, 'Statuses')."


def _instant(value) -> str:
    """A time as the other fields of these answers write it (DRF's format: UTC with a Z)."""
    return serializers.DateTimeField().to_representation(value)


class OriginalErrorSerializer(serializers.Serializer):
    """``ValidationErrorResponse``: each problem as one line of text, naming the field at fault."""

    errors = serializers.ListField(child=serializers.CharField())
    detail = serializers.CharField(required=False, help_text="Trama's summary (the original has only errors).")


class RunSagaRequestSerializer(serializers.Serializer):
    definition = serializers.JSONField(help_text="A definition, v1 (steps) or v2 (nodes), as the original takes it.")
    payload = serializers.JSONField(required=False, default=dict, help_text="The input; a JSON object.")

    def validate_payload(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("must be a JSON object")
        return value


class RunStoredSagaRequestSerializer(serializers.Serializer):
    payload = serializers.JSONField(required=False, default=dict, help_text="The input; a JSON object.")

    validate_payload = RunSagaRequestSerializer.validate_payload


class CreateResponseSerializer(serializers.Serializer):
    """``SagaCreateResponse``."""

    id = serializers.UUIDField()


class RetryResponseSerializer(serializers.Serializer):
    """``SagaRetryResponse``."""

    id = serializers.UUIDField()
    status = serializers.CharField(help_text="REQUEUED")


class DefinitionResponseSerializer(serializers.Serializer):
    """``SagaDefinitionResponse``: ``definition`` is the JSON as it was stored, unchanged."""

    id = serializers.UUIDField(source="public_id")
    name = serializers.CharField()
    version = serializers.SerializerMethodField(help_text="The original's version string (or Trama's number).")
    definition = serializers.JSONField(source="source")
    createdAt = serializers.DateTimeField(source="created_at")
    updatedAt = serializers.DateTimeField(source="created_at", help_text="A stored version never changes.")

    def get_version(self, definition: Definition) -> str:
        return version_label(definition)


class ExecutionSummarySerializer(serializers.Serializer):
    """``SagaExecutionSummary`` (``GET /workflows``)."""

    id = serializers.UUIDField()
    name = serializers.CharField(source="definition.name")
    version = serializers.SerializerMethodField()
    status = serializers.SerializerMethodField(help_text=STATUS_HELP)
    failureDescription = serializers.SerializerMethodField()
    startedAt = serializers.SerializerMethodField()
    completedAt = serializers.DateTimeField(source="finished_at", allow_null=True)
    updatedAt = serializers.DateTimeField(source="updated_at")

    def get_version(self, execution: Execution) -> str:
        return version_label(execution.definition)

    def get_status(self, execution: Execution) -> str:
        return original_status(execution)

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_failureDescription(self, execution: Execution) -> str | None:
        if execution.status == "CANCELLED":
            return "cancelled by an operator"
        error = execution.error
        return str(error.get("message") or error) if isinstance(error, dict) else None

    @extend_schema_field(OpenApiTypes.DATETIME)
    def get_startedAt(self, execution: Execution) -> str:
        return _instant(execution.started_at or execution.created_at)


class ExecutionStatusSerializer(ExecutionSummarySerializer):
    """``SagaStatusResponse`` (``GET /workflows/{id}``)."""

    callbackWarning = serializers.SerializerMethodField(help_text="Why onSuccessCallback / onFailureCallback failed.")

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_callbackWarning(self, execution: Execution) -> str | None:
        failed = execution.steps.filter(phase=StepPhase.NOTIFY, status="failed").order_by("-seq").first()
        if failed is None:
            return None
        callback = "onSuccessCallback" if failed.node_id == "notify.succeeded" else "onFailureCallback"
        reason = failed.response_status or (failed.error or {}).get("message")
        return f"{callback} failed: status={reason}"


# The original's phase names (ExecutionPhase in SagaExecution.kt).
def original_phase(step: Step) -> str:
    if step.phase == StepPhase.COMPENSATION:
        return "DOWN"
    if step.node_type == "switch":
        return "SWITCH"
    return "CALLBACK" if (step.detail or {}).get("callback") is not None else "UP"


def _latency_ms(step: Step) -> int:
    return int(((step.finished_at or step.started_at) - step.started_at).total_seconds() * 1000)


class StepResultSerializer(serializers.Serializer):
    """``SagaStepResultResponse``: one finished node attempt (``GET /workflows/{id}/steps``)."""

    id = serializers.IntegerField()
    stepIndex = serializers.SerializerMethodField()
    stepName = serializers.CharField(source="node_id")
    phase = serializers.SerializerMethodField(help_text="UP, DOWN, SWITCH or CALLBACK")
    statusCode = serializers.IntegerField(source="response_status", allow_null=True)
    success = serializers.SerializerMethodField()
    responseBody = serializers.SerializerMethodField()
    startedAt = serializers.SerializerMethodField()
    stepStartedAt = serializers.DateTimeField(source="started_at")
    createdAt = serializers.SerializerMethodField()
    latencyMs = serializers.SerializerMethodField()

    def get_stepIndex(self, step: Step) -> int:
        return self.context["index"][step.pk]

    def get_phase(self, step: Step) -> str:
        return original_phase(step)

    def get_success(self, step: Step) -> bool:
        return step.status == "succeeded"

    @extend_schema_field(OpenApiTypes.ANY)
    def get_responseBody(self, step: Step):
        callback = (step.detail or {}).get("callback")
        return callback if callback is not None else step.response_body

    @extend_schema_field(OpenApiTypes.DATETIME)
    def get_startedAt(self, step: Step) -> str:
        return _instant(step.execution.started_at or step.execution.created_at)

    @extend_schema_field(OpenApiTypes.DATETIME)
    def get_createdAt(self, step: Step) -> str:
        return _instant(step.finished_at or step.started_at)

    def get_latencyMs(self, step: Step) -> int:
        return _latency_ms(step)


class StepCallSerializer(serializers.Serializer):
    """``SagaStepCallResponse``: one HTTP call (``GET /workflows/{id}/steps/calls``)."""

    id = serializers.IntegerField()
    stepName = serializers.CharField(source="node_id")
    phase = serializers.SerializerMethodField(help_text="UP or DOWN")
    attempt = serializers.IntegerField()
    requestUrl = serializers.SerializerMethodField()
    requestBody = serializers.SerializerMethodField()
    statusCode = serializers.IntegerField(source="response_status", allow_null=True)
    responseBody = serializers.JSONField(source="response_body", allow_null=True)
    error = serializers.SerializerMethodField()
    stepStartedAt = serializers.DateTimeField(source="started_at")
    createdAt = serializers.SerializerMethodField()
    latencyMs = serializers.SerializerMethodField()

    def get_phase(self, step: Step) -> str:
        return "DOWN" if step.phase == StepPhase.COMPENSATION else "UP"

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_requestUrl(self, step: Step) -> str | None:
        return (step.request or {}).get("url")

    @extend_schema_field(OpenApiTypes.ANY)
    def get_requestBody(self, step: Step):
        return (step.request or {}).get("body")

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_error(self, step: Step) -> str | None:
        return (step.error or {}).get("message") if step.error else None

    @extend_schema_field(OpenApiTypes.DATETIME)
    def get_createdAt(self, step: Step) -> str:
        return _instant(step.finished_at or step.started_at)

    def get_latencyMs(self, step: Step) -> int:
        return _latency_ms(step)
