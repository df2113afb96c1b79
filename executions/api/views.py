"""Executions API: each view validates input, calls one service function, serializes."""

import uuid
from datetime import datetime

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from definitions.services import DefinitionInvalid, DefinitionNotFound
from definitions.validation.instants import InstantError, parse_instant
from executions import services, telemetry
from executions.api.serializers import (
    CancelSerializer,
    CompleteCallbackSerializer,
    EmptySerializer,
    ExecutionAcceptedSerializer,
    ExecutionSerializer,
    ExecutionStartSerializer,
    RerunSerializer,
    RetrySerializer,
    StepSerializer,
)
from executions.models import Execution, ExecutionStatus, Step
from executions.permissions import MayActOnExecutions
from trama_project.api import ErrorSerializer

ERRORS = {400: ErrorSerializer, 401: ErrorSerializer, 404: ErrorSerializer, 409: ErrorSerializer}
ACTION_ERRORS = {**ERRORS, 403: ErrorSerializer}
IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description="Repeat a start safely: the same key and body return the first execution; another body is a 409.",
)
TRACEPARENT = OpenApiParameter(
    "traceparent",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description="W3C trace context of the caller's span: the execution's root span becomes its child.",
)
LIST_FILTERS = [
    OpenApiParameter("status", OpenApiTypes.STR, description="One status, or several comma-separated."),
    OpenApiParameter("definition", OpenApiTypes.STR, description="Definition name."),
    OpenApiParameter("created_after", OpenApiTypes.DATETIME, description="ISO-8601."),
    OpenApiParameter("created_before", OpenApiTypes.DATETIME, description="ISO-8601."),
    OpenApiParameter("include_branches", OpenApiTypes.BOOL, description="Also list parallel branch executions."),
]


def _conflict(message: str) -> Response:
    return Response({"detail": message}, status=status.HTTP_409_CONFLICT)


def _execution_or_404(pk: str) -> Execution:
    """The execution; an unknown id and a malformed one answer the same 404 (neither names an execution)."""
    try:
        return Execution.objects.select_related("definition").get(pk=uuid.UUID(pk))
    except (ValueError, Execution.DoesNotExist):
        raise NotFound("No execution with that id (execution ids are UUIDs).") from None


def _filter_executions(params) -> "list | object":
    queryset = Execution.objects.select_related("definition").order_by("-created_at")
    if not _flag_param(params, "include_branches"):
        queryset = queryset.filter(parent__isnull=True)
    if params.get("status"):
        wanted = [s.strip().upper() for s in params["status"].split(",")]
        unknown = [s for s in wanted if s not in ExecutionStatus.values]
        if unknown:
            raise ValidationError({"status": f"unknown status {unknown[0]!r}; one of {', '.join(ExecutionStatus)}"})
        queryset = queryset.filter(status__in=wanted)
    if params.get("definition"):
        queryset = queryset.filter(definition__name=params["definition"])
    for name, lookup in (("created_after", "created_at__gte"), ("created_before", "created_at__lt")):
        if params.get(name):
            queryset = queryset.filter(**{lookup: _instant_param(params, name)})
    return queryset


def _flag_param(params, name: str) -> bool:
    """A true/false filter (absent is false); a 400 naming it for any other word, rather than a silent false."""
    raw = params.get(name, "").lower()
    if raw in ("1", "true", "yes"):
        return True
    if raw in ("", "0", "false", "no"):
        return False
    raise ValidationError({name: f"{name} must be true or false, got {params[name]!r}"})


def _instant_param(params, name: str) -> datetime:
    """A time filter as an instant in UTC (no zone means UTC); a 400 naming it when it is none."""
    try:
        return parse_instant(params[name], naive_is_utc=True)
    except InstantError as exc:
        raise ValidationError({name: f"{name} {exc}, got {params[name]!r}"}) from None


@extend_schema_view(
    get=extend_schema(
        tags=["executions"],
        operation_id="executions_list",
        summary="List executions",
        parameters=LIST_FILTERS,
        responses={200: ExecutionSerializer(many=True), 400: ErrorSerializer, 401: ErrorSerializer},
    )
)
class ExecutionListCreateView(generics.ListAPIView):
    serializer_class = ExecutionSerializer

    def get_queryset(self):
        return _filter_executions(self.request.query_params)

    @extend_schema(
        tags=["executions"],
        operation_id="executions_start",
        summary="Start an execution",
        parameters=[IDEMPOTENCY_KEY, TRACEPARENT],
        request=ExecutionStartSerializer,
        responses={202: ExecutionAcceptedSerializer, 413: ErrorSerializer, **ERRORS},
    )
    def post(self, request, *args, **kwargs):
        body = ExecutionStartSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        key = request.headers.get("Idempotency-Key", "").strip() or None
        if key and len(key) > 200:
            raise ValidationError({"Idempotency-Key": "must be at most 200 characters"})
        try:
            traced = telemetry.caller_traceparent(request.headers)
            execution, created = services.start_requested(data, key, str(request.user), traced)
        except services.IdempotencyConflict as exc:
            return _conflict(str(exc))
        except DefinitionInvalid as exc:
            raise ValidationError({"spec": [f"{e['path'] or '(root)'}: {e['message']}" for e in exc.errors]}) from None
        except DefinitionNotFound as missing:
            field, message = missing.reason
            raise ValidationError({field: message}) from None
        headers = {"Location": f"/api/v1/executions/{execution.pk}/"}
        if not created:
            headers["Idempotent-Replayed"] = "true"
        return Response(ExecutionAcceptedSerializer(execution).data, status=status.HTTP_202_ACCEPTED, headers=headers)


class ExecutionDetailView(APIView):
    @extend_schema(tags=["executions"], operation_id="executions_retrieve", summary="One execution",
                   responses={200: ExecutionSerializer, 401: ErrorSerializer, 404: ErrorSerializer})  # fmt: skip
    def get(self, request, pk):
        return Response(ExecutionSerializer(_execution_or_404(pk)).data)


@extend_schema_view(
    get=extend_schema(
        tags=["executions"],
        operation_id="executions_steps",
        summary="The step history, in order",
        responses={200: StepSerializer(many=True), 401: ErrorSerializer, 404: ErrorSerializer},
    )
)
class ExecutionStepsView(generics.ListAPIView):
    serializer_class = StepSerializer
    pagination_class = None

    def get_queryset(self):
        """The execution's steps and its parallel branches' steps, side by side in time order."""
        ids = Execution.objects.family_ids([_execution_or_404(self.kwargs["pk"]).pk])
        return Step.objects.filter(execution_id__in=ids).select_related("execution").order_by("started_at", "seq")


def action_schema(operation_id: str, summary: str, request: type | None):
    """The OpenAPI entry of one execution action's POST (each answers the execution, 202)."""
    post = extend_schema(tags=["executions"], operation_id=operation_id, request=request, summary=summary,
                         responses={202: ExecutionSerializer, **ACTION_ERRORS})  # fmt: skip
    return extend_schema_view(post=post)


class _ExecutionAction(APIView):
    """POST executions/{id}/<action>/: validate the body, call one service function, answer 202 or 409.

    ``act`` gets the caller's name as ``by``: each action is recorded as an OperatorAction.
    A session user needs the act_on_execution permission (executions.permissions).
    """

    permission_classes = [IsAuthenticated, MayActOnExecutions]
    body_serializer: type = CancelSerializer

    def post(self, request, pk):
        execution = _execution_or_404(pk)
        body = self.body_serializer(data=request.data or {})
        body.is_valid(raise_exception=True)
        try:
            execution = self.act(execution, by=str(request.user), **body.validated_data)
        except services.TransitionRefused as exc:
            return _conflict(f"cannot {self.verb} an execution that is {execution.status}: {exc}")
        return Response(ExecutionSerializer(execution).data, status=status.HTTP_202_ACCEPTED)


@action_schema("executions_cancel", "Cancel (compensating unless compensate is false)", CancelSerializer)
class ExecutionCancelView(_ExecutionAction):
    verb = "cancel"
    body_serializer = CancelSerializer

    def act(self, execution, by: str, compensate: bool):
        return services.cancel_execution(execution.pk, compensate=compensate, by=by)


@action_schema("executions_retry", "Resume a FAILED execution from the step that failed", RetrySerializer)
class ExecutionRetryView(_ExecutionAction):
    verb = "retry"
    body_serializer = RetrySerializer

    def act(self, execution, by: str, skip: bool):
        return services.retry_execution(execution.pk, skip=skip, by=by)


@action_schema("executions_wake", "End a sleep now", None)
class ExecutionWakeView(_ExecutionAction):
    verb = "wake"
    body_serializer = EmptySerializer

    def act(self, execution, by: str):
        return services.wake_execution(execution.pk, by=by)


@action_schema(
    "executions_rerun",
    "Start a new execution with the same input (or an edited one), answers the new execution",
    RerunSerializer,
)
class ExecutionRerunView(_ExecutionAction):
    verb = "re-run"
    body_serializer = RerunSerializer

    def act(self, execution, by: str, latest: bool, input=None):
        try:
            return services.rerun_execution(execution.pk, payload=input, latest=latest, by=by)
        except DefinitionNotFound as missing:
            raise services.TransitionRefused(str(missing)) from None


@action_schema(
    "executions_complete_callback",
    "Answer the callback a WAITING execution waits for, by hand",
    CompleteCallbackSerializer,
)
class ExecutionCompleteCallbackView(_ExecutionAction):
    verb = "complete the callback of"
    body_serializer = CompleteCallbackSerializer

    def act(self, execution, by: str, status: str, body: dict):
        return services.complete_callback(execution.pk, outcome=status, body=body, by=by)
