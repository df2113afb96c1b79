"""Definitions and expressions API: each view validates input, calls one service function, serializes."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from definitions.api.serializers import (
    DefinitionDiffSerializer,
    DefinitionSerializer,
    DefinitionSourceSerializer,
    DefinitionSummarySerializer,
    EvaluateResultSerializer,
    EvaluateSerializer,
    ValidationOkSerializer,
)
from definitions.diff import diff_specs
from definitions.models import Definition
from definitions.rules import RuleError, evaluate, rule_problems
from definitions.services import (
    DefinitionInvalid,
    DefinitionNotFound,
    definition_versions,
    find_definition,
    latest_definitions,
    store_definition_if_changed,
    why_missing,
)
from definitions.validation import validate_definition
from trama_project.api import ErrorSerializer

# "validate" and "simulate" are routes of their own, never a definition's name (validation refuses them).
NAME = OpenApiParameter(
    "name",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    description="The definition's name (never `validate` or `simulate`).",
    pattern=r"^(?!(validate|simulate)$)[^/]+$",
)
NAME_FILTER = OpenApiParameter(
    "name", OpenApiTypes.STR, OpenApiParameter.QUERY, description="Only names containing this (any case)."
)
VERSION = OpenApiParameter("version", OpenApiTypes.INT, OpenApiParameter.PATH, description="The version number.")
READ_ERRORS = {401: ErrorSerializer, 404: ErrorSerializer}
WRITE_ERRORS = {400: ErrorSerializer, 401: ErrorSerializer, 413: ErrorSerializer, 415: ErrorSerializer}


def stored_or_404(name: str, version: int | None = None) -> Definition:
    """Version ``version`` of ``name`` (the latest when None), or a 404 naming the closest names or the latest."""
    try:
        return find_definition(name, version)
    except DefinitionNotFound as missing:
        raise NotFound(missing.reason[1]) from None


def invalid_response(errors: list[dict], summary: str) -> Response:
    """The 400 answer for problems found in a body: the shape of trama_project.api.ErrorSerializer."""
    return Response({"detail": summary, "errors": errors}, status=status.HTTP_400_BAD_REQUEST)


@extend_schema_view(
    get=extend_schema(
        tags=["definitions"],
        operation_id="definitions_list",
        summary="List definitions (the latest version of each name)",
        parameters=[NAME_FILTER],
        responses={200: DefinitionSummarySerializer(many=True), 400: ErrorSerializer, 401: ErrorSerializer},
    )
)
class DefinitionListCreateView(generics.ListAPIView):
    serializer_class = DefinitionSummarySerializer

    def get_queryset(self):
        return latest_definitions(self.request.query_params.get("name", ""))

    @extend_schema(
        tags=["definitions"],
        operation_id="definitions_create",
        summary="Store a definition (a new name, or the next version of an existing one)",
        description=(
            "201: stored as the next version. 200: the latest version already says the same (normalized spec and "
            "description): nothing is stored and that version is returned, so two versions in a row never match."
        ),
        request=DefinitionSourceSerializer,
        responses={201: DefinitionSerializer, 200: DefinitionSerializer, **WRITE_ERRORS},
    )
    def post(self, request, *args, **kwargs):
        try:
            definition, stored = store_definition_if_changed(request.data, created_by=str(request.user))
        except DefinitionInvalid as exc:
            return invalid_response(exc.errors, str(exc))
        answer = status.HTTP_201_CREATED if stored else status.HTTP_200_OK
        return Response(DefinitionSerializer(definition).data, status=answer)


class DefinitionValidateView(APIView):
    @extend_schema(
        tags=["definitions"],
        operation_id="definitions_validate",
        summary="Check a definition without storing it",
        request=DefinitionSourceSerializer,
        responses={200: ValidationOkSerializer, **WRITE_ERRORS},
    )
    def post(self, request):
        result = validate_definition(request.data)
        if result.errors:
            return invalid_response(result.errors, str(DefinitionInvalid(result.errors)))
        return Response({"valid": True, "spec": result.spec})


@extend_schema_view(
    get=extend_schema(
        tags=["definitions"],
        operation_id="definitions_latest",
        summary="The latest version of a definition",
        parameters=[NAME],
        responses={200: DefinitionSerializer, **READ_ERRORS},
    )
)
class DefinitionLatestView(generics.RetrieveAPIView):
    serializer_class = DefinitionSerializer

    def get_object(self) -> Definition:
        return stored_or_404(self.kwargs["name"])


@extend_schema_view(
    get=extend_schema(
        tags=["definitions"],
        operation_id="definitions_versions_list",
        summary="Every version of a definition, newest first",
        parameters=[NAME],
        responses={200: DefinitionSummarySerializer(many=True), 400: ErrorSerializer, **READ_ERRORS},
    )
)
class DefinitionVersionListView(generics.ListAPIView):
    serializer_class = DefinitionSummarySerializer

    def get_queryset(self):
        versions = definition_versions(self.kwargs["name"])
        if not versions.exists():
            raise NotFound(why_missing(self.kwargs["name"])[1])
        return versions


@extend_schema_view(
    get=extend_schema(
        tags=["definitions"],
        operation_id="definitions_version",
        summary="One version of a definition",
        parameters=[NAME, VERSION],
        responses={200: DefinitionSerializer, **READ_ERRORS},
    )
)
class DefinitionVersionView(generics.RetrieveAPIView):
    serializer_class = DefinitionSerializer

    def get_object(self) -> Definition:
        return stored_or_404(self.kwargs["name"], self.kwargs["version"])


class ExpressionEvaluateView(APIView):
    @extend_schema(
        tags=["expressions"],
        operation_id="expressions_evaluate",
        summary="Evaluate a JSON Logic rule against data (try a switch rule)",
        request=EvaluateSerializer,
        responses={200: EvaluateResultSerializer, **WRITE_ERRORS},
    )
    def post(self, request):
        serializer = EvaluateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        rule, data = serializer.validated_data["rule"], serializer.validated_data["data"]
        problems = rule_problems(rule, "rule")
        if problems:
            return invalid_response(problems, f"{problems[0]['path']}: {problems[0]['message']}")
        try:
            return Response({"result": evaluate(rule, data)})
        except RuleError as exc:
            return invalid_response([{"path": "rule", "message": str(exc)}], f"rule failed: {exc}")


class DefinitionDiffView(APIView):
    @extend_schema(
        tags=["definitions"],
        operation_id="definitions_diff",
        summary="What changed between two versions (node ids added, removed, changed fields)",
        parameters=[
            NAME,
            OpenApiParameter("version", OpenApiTypes.INT, OpenApiParameter.PATH, description="The older version."),
            OpenApiParameter("other", OpenApiTypes.INT, OpenApiParameter.PATH, description="The newer version."),
        ],
        responses={200: DefinitionDiffSerializer, **READ_ERRORS},
    )
    def get(self, request, name: str, version: int, other: int):
        old, new = stored_or_404(name, version), stored_or_404(name, other)
        body = {"name": name, "from_version": version, "to_version": other, **diff_specs(old.spec, new.spec)}
        return Response(DefinitionDiffSerializer(body).data)
