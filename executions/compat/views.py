"""The original Trama's routes (``app/Application.kt``): thin adapters over the services our API calls.

Answers keep the original's codes and shapes, among them its 204 for an unknown
execution or definition (its clients poll on it) and ``{"errors": [text]}`` for problems.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db import IntegrityError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from definitions.services import (
    DefinitionInUse,
    DefinitionInvalid,
    delete_definition,
    find_by_version_label,
    has_version_label,
    store_definition,
    stored_definitions,
)
from executions import services
from executions.callbacks.views import CallbackView
from executions.compat import serializers as shapes
from executions.compat.statuses import ORIGINAL_STATUSES, status_filter
from executions.models import Execution, Step, StepPhase
from executions.permissions import MayActOnExecutions
from trama_project.api import Pagination, exception_handler
from trama_project.authentication import BasicTokenAuthentication, BearerTokenAuthentication

TAG = ["original Trama API (compatibility)"]
ERROR = shapes.OriginalErrorSerializer
NO_CONTENT = OpenApiResponse(description="Not found (the original answers 204, and its clients poll on it).")
IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER, description="As on POST /api/v1/executions/."
)


def original_error(code: int, *messages: str) -> Response:
    """The original's ``ValidationErrorResponse``, plus our one-line ``detail``."""
    return Response({"errors": list(messages), "detail": messages[0]}, status=code)


def _problems(errors: list[dict]) -> list[str]:
    return [f"{e['path']}: {e['message']}" if e.get("path") else e["message"] for e in errors]


def _original_exception_handler(exc, context):
    """Our handler's answer, reshaped: each ``{path, message}`` as one line of text."""
    response = exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict):
        detail = str(response.data.get("detail", ""))
        response.data = {"errors": _problems(response.data.get("errors") or []) or [detail], "detail": detail}
    return response


class OriginalView(APIView):
    """Our token, as a Bearer header or as the password of HTTP Basic (a base URL's credentials)."""

    authentication_classes = [BasicTokenAuthentication, BearerTokenAuthentication]

    def get_exception_handler(self):
        return _original_exception_handler


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _execution(pk: str) -> Execution | Response:
    """The execution, or the original's answer: 400 for a malformed id, 204 for an unknown one."""
    execution_id = _uuid(pk)
    if execution_id is None:
        return original_error(400, "invalid workflow id")
    found = Execution.objects.select_related("definition").filter(pk=execution_id).first()
    return found if found is not None else Response(status=status.HTTP_204_NO_CONTENT)


def _start(request, definition_or_source: Any, payload: dict) -> Response:
    """Start through the one start path; the original answers 200 ``{"id"}``."""
    key = request.headers.get("Idempotency-Key", "").strip() or None
    if key and len(key) > 200:  # as on POST /api/v1/executions/: the column holds 200
        return original_error(400, "Idempotency-Key: must be at most 200 characters")
    try:
        if isinstance(definition_or_source, dict):
            execution, _ = services.start_requested(
                {"spec": definition_or_source, "input": payload}, key, str(request.user)
            )
        else:
            execution, _ = services.start_execution(definition_or_source, payload, key, str(request.user))
    except DefinitionInvalid as exc:
        return original_error(400, *[f"definition.{line}" for line in _problems(exc.errors)])
    except services.IdempotencyConflict as exc:
        return original_error(409, str(exc))
    return Response({"id": str(execution.pk)})


class RunInlineView(OriginalView):
    @extend_schema(
        tags=TAG,
        operation_id="runSagaInline",
        summary="Run an inline definition (v1 or v2)",
        parameters=[IDEMPOTENCY_KEY],
        request=shapes.RunSagaRequestSerializer,
        responses={200: shapes.CreateResponseSerializer, 400: ERROR, 401: ERROR, 409: ERROR},
    )
    def post(self, request):
        body = shapes.RunSagaRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        definition = body.validated_data["definition"]
        if not isinstance(definition, dict):
            return original_error(400, "definition: must be a JSON object")
        return _start(request, definition, body.validated_data["payload"])


def _store(request, public_id: uuid.UUID | None = None) -> Response:
    """Store ``request.data`` as the original does: a second (name, version) is a 409, not a new version."""
    source = request.data
    if not isinstance(source, dict):
        return original_error(400, "the body must be a JSON object (a definition)")
    name, label = source.get("name"), source.get("version")
    if isinstance(name, str) and isinstance(label, str) and "kind" not in source and has_version_label(name, label):
        return original_error(409, f"definition already exists: {name} version {label}")
    try:
        definition = store_definition(source, str(request.user), public_id)
    except DefinitionInvalid as exc:
        return original_error(400, *_problems(exc.errors))
    except IntegrityError:
        return original_error(409, f"definition already exists: id {public_id}")
    return Response(shapes.DefinitionResponseSerializer(definition).data)


class DefinitionsView(OriginalView):
    @extend_schema(
        tags=TAG,
        operation_id="listSagaDefinitions",
        summary="List stored definitions (every version)",
        parameters=[OpenApiParameter("limit", int), OpenApiParameter("offset", int)],
        responses={200: shapes.DefinitionResponseSerializer(many=True), 400: ERROR, 401: ERROR},
    )
    def get(self, request):
        paginator = Pagination()
        page = paginator.paginate_queryset(stored_definitions().order_by("-created_at", "-pk"), request, view=self)
        return Response(shapes.DefinitionResponseSerializer(page, many=True).data)

    @extend_schema(
        tags=TAG,
        operation_id="createSagaDefinition",
        summary="Store a definition (v1 or v2)",
        request=OpenApiTypes.OBJECT,
        responses={200: shapes.DefinitionResponseSerializer, 400: ERROR, 401: ERROR, 409: ERROR},
    )
    def post(self, request):
        return _store(request)


class DefinitionByIdView(OriginalView):
    def _found(self, pk: str):
        public_id = _uuid(pk)
        if public_id is None:
            return None, original_error(400, "invalid definition id")
        return public_id, stored_definitions().filter(public_id=public_id).first()

    @extend_schema(
        tags=TAG,
        operation_id="getSagaDefinitionById",
        summary="One stored definition",
        responses={200: shapes.DefinitionResponseSerializer, 204: NO_CONTENT, 400: ERROR, 401: ERROR},
    )
    def get(self, request, pk: str):
        _, found = self._found(pk)
        if found is None or isinstance(found, Response):
            return found or Response(status=status.HTTP_204_NO_CONTENT)
        return Response(shapes.DefinitionResponseSerializer(found).data)

    @extend_schema(
        tags=TAG,
        operation_id="putSagaDefinitionById",
        summary="Store a definition under this id",
        description="Inserts only, as in the original: an id or a (name, version) already stored is a 409.",
        request=OpenApiTypes.OBJECT,
        responses={200: shapes.DefinitionResponseSerializer, 400: ERROR, 401: ERROR, 409: ERROR},
    )
    def put(self, request, pk: str):
        public_id, found = self._found(pk)
        if isinstance(found, Response):
            return found
        if found is not None:
            return original_error(409, f"definition already exists: id {public_id}")
        return _store(request, public_id)

    @extend_schema(
        tags=TAG,
        operation_id="deleteSagaDefinitionById",
        summary="Delete a stored definition",
        description="204 when deleted or unknown; 409 when executions ran it (they keep their version).",
        responses={204: OpenApiResponse(description="Deleted or not found"), 400: ERROR, 401: ERROR, 409: ERROR},
    )
    def delete(self, request, pk: str):
        public_id = _uuid(pk)
        if public_id is None:
            return original_error(400, "invalid definition id")
        try:
            delete_definition(public_id)
        except DefinitionInUse as exc:
            return original_error(409, str(exc))
        return Response(status=status.HTTP_204_NO_CONTENT)


NAME_VERSION = [
    OpenApiParameter("name", str, OpenApiParameter.PATH),
    OpenApiParameter("version", str, OpenApiParameter.PATH, description="The original's version string (or ours)."),
]


class DefinitionByNameVersionView(OriginalView):
    @extend_schema(
        tags=TAG,
        operation_id="getSagaDefinitionByNameVersion",
        summary="One definition by name and version",
        parameters=NAME_VERSION,
        responses={200: shapes.DefinitionResponseSerializer, 204: NO_CONTENT, 401: ERROR},
    )
    def get(self, request, name: str, version: str):
        found = find_by_version_label(name, version)
        if found is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(shapes.DefinitionResponseSerializer(found).data)


class RunStoredView(OriginalView):
    @extend_schema(
        tags=TAG,
        operation_id="runStoredSaga",
        summary="Run a stored definition by name and version",
        parameters=[*NAME_VERSION, IDEMPOTENCY_KEY],
        request=shapes.RunStoredSagaRequestSerializer,
        responses={200: shapes.CreateResponseSerializer, 204: NO_CONTENT, 400: ERROR, 401: ERROR, 409: ERROR},
    )
    def post(self, request, name: str, version: str):
        body = shapes.RunStoredSagaRequestSerializer(data=request.data or {})
        body.is_valid(raise_exception=True)
        found = find_by_version_label(name, version)
        if found is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return _start(request, found, body.validated_data["payload"])


class WorkflowListView(OriginalView):
    @extend_schema(
        tags=TAG,
        operation_id="listSagaExecutions",
        summary="List executions, newest first",
        parameters=[
            OpenApiParameter("status", str, enum=list(ORIGINAL_STATUSES)),
            OpenApiParameter("name", str, description="Definition name."),
            OpenApiParameter("limit", int),
            OpenApiParameter("offset", int),
        ],
        responses={200: shapes.ExecutionSummarySerializer(many=True), 400: ERROR, 401: ERROR},
    )
    def get(self, request):
        executions = Execution.objects.select_related("definition").filter(parent__isnull=True)
        wanted = request.query_params.get("status")
        if wanted:
            if wanted not in ORIGINAL_STATUSES:
                raise ValidationError({"status": f"unknown status {wanted!r}; one of {', '.join(ORIGINAL_STATUSES)}"})
            executions = executions.filter(status_filter(wanted))
        if request.query_params.get("name"):
            executions = executions.filter(definition__name=request.query_params["name"])
        page = Pagination().paginate_queryset(executions.order_by("-created_at"), request, view=self)
        return Response(shapes.ExecutionSummarySerializer(page, many=True).data)


ID = [OpenApiParameter("pk", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The execution id.")]


class WorkflowView(OriginalView):
    @extend_schema(
        tags=TAG,
        operation_id="getSagaStatus",
        summary="An execution's status",
        parameters=ID,
        responses={200: shapes.ExecutionStatusSerializer, 204: NO_CONTENT, 400: ERROR, 401: ERROR},
    )
    def get(self, request, pk: str):
        found = _execution(pk)
        if isinstance(found, Response):
            return found
        return Response(shapes.ExecutionStatusSerializer(found).data)


def _history(execution: Execution):
    """The execution's finished steps, forward and compensation, in order (no notifications: the
    original records its completion callbacks only as a warning)."""
    steps = Step.objects.filter(execution=execution).exclude(phase=StepPhase.NOTIFY).exclude(finished_at=None)
    return steps.select_related("execution").order_by("seq")


class WorkflowStepsView(OriginalView):
    @extend_schema(
        tags=TAG,
        operation_id="getSagaSteps",
        summary="One result per finished node attempt",
        parameters=ID,
        responses={200: shapes.StepResultSerializer(many=True), 204: NO_CONTENT, 400: ERROR, 401: ERROR},
    )
    def get(self, request, pk: str):
        found = _execution(pk)
        if isinstance(found, Response):
            return found
        steps = list(_history(found))
        index = {step.pk: position for position, step in enumerate(steps)}
        return Response(shapes.StepResultSerializer(steps, many=True, context={"index": index}).data)


class WorkflowCallsView(OriginalView):
    @extend_schema(
        tags=TAG,
        operation_id="getSagaStepCalls",
        summary="One row per HTTP call",
        parameters=ID,
        responses={200: shapes.StepCallSerializer(many=True), 204: NO_CONTENT, 400: ERROR, 401: ERROR},
    )
    def get(self, request, pk: str):
        found = _execution(pk)
        if isinstance(found, Response):
            return found
        calls = _history(found).filter(node_type__in=["task", "async_task"])
        return Response(shapes.StepCallSerializer(calls, many=True).data)


class RetryView(OriginalView):
    # Only tokens reach these routes today (OriginalView); the actions rule holds should a session ever be added.
    permission_classes = [IsAuthenticated, MayActOnExecutions]

    @extend_schema(
        tags=TAG,
        operation_id="retrySaga",
        summary="Resume a failed execution from the step that failed",
        parameters=ID,
        request=None,
        responses={202: shapes.RetryResponseSerializer, 204: NO_CONTENT, 400: ERROR, 401: ERROR, 409: ERROR},
    )
    def post(self, request, pk: str):
        found = _execution(pk)
        if isinstance(found, Response):
            return found
        try:
            services.retry_execution(found.pk)
        except services.TransitionRefused as exc:
            return original_error(409, f"cannot retry an execution that is {found.status}: {exc}")
        return Response({"id": str(found.pk), "status": "REQUEUED"}, status=status.HTTP_202_ACCEPTED)


class WakeView(OriginalView):
    permission_classes = [IsAuthenticated, MayActOnExecutions]

    @extend_schema(
        tags=TAG,
        operation_id="wakeSaga",
        summary="End a sleep now",
        parameters=ID,
        request=None,
        responses={202: OpenApiResponse(description="Woken"), 400: ERROR, 401: ERROR, 404: ERROR, 409: ERROR},
    )
    def post(self, request, pk: str):
        found = _execution(pk)
        if isinstance(found, Response):
            return found if found.status_code != 204 else original_error(404, "execution not found")
        try:
            services.wake_execution(found.pk)
        except services.TransitionRefused as exc:
            return original_error(409, f"execution is not sleeping: {exc}")
        return Response(status=status.HTTP_202_ACCEPTED)


class NodeCallbackView(OriginalView):
    """The original's callback route. No API token: the signed callback token is the credential."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        tags=TAG,
        operation_id="receiveNodeCallback",
        summary="Deliver an async node's callback",
        description="The token in X-Callback-Token (X-Trama-Callback-Token also works). Outcome and "
        "answers as POST /api/v1/callbacks/; a bad token is a 401, as in the original.",
        parameters=[
            OpenApiParameter("X-Callback-Token", str, OpenApiParameter.HEADER, required=True),
            OpenApiParameter("execution_id", OpenApiTypes.UUID, OpenApiParameter.PATH),
            OpenApiParameter("node_id", str, OpenApiParameter.PATH),
        ],
        request=OpenApiTypes.OBJECT,
        responses={
            202: OpenApiResponse(description="Accepted"),
            200: OpenApiResponse(description="Again"),
            **{code: ERROR for code in (400, 401, 404, 409, 410)},
        },
    )
    def post(self, request, execution_id: str, node_id: str):
        if _uuid(execution_id) is None or not node_id.strip():
            return original_error(400, "invalid executionId or nodeId")
        token = request.headers.get("X-Callback-Token") or request.headers.get("X-Trama-Callback-Token") or ""
        if not token:
            return original_error(400, "missing X-Callback-Token header")
        answer = CallbackView.receive(request, token, (str(_uuid(execution_id)), node_id))
        if answer.status_code < 300:
            return answer
        code = 401 if answer.status_code == 403 else answer.status_code  # the original: "invalid callback token"
        return original_error(code, str(answer.data["detail"]))
