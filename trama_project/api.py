"""Shared API pieces: the error shape every endpoint answers with, the JSON parser, pagination, and the
answer to a URL missing its slash."""

import re

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, HttpResponsePermanentRedirect, JsonResponse
from django.urls import is_valid_path
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, pagination, parsers, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from trama_project.jsonvalues import nesting_depth

NOT_JSON = "unsupported media type '{}': the API takes application/json (send Content-Type: application/json)"


class ErrorItemSerializer(serializers.Serializer):
    path = serializers.CharField(help_text="JSON path of the offending field ('' for the whole body).")
    message = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    """Every 4xx answer: a summary and, where fields are at fault, one item per problem."""

    detail = serializers.CharField()
    errors = ErrorItemSerializer(many=True, required=False)


def _flatten(detail, path: str = "") -> list[dict]:
    """Turn DRF's nested error detail into [{path, message}] items."""
    if isinstance(detail, dict):
        items = []
        for key, value in detail.items():
            sub = key if key != "non_field_errors" else ""
            items += _flatten(value, f"{path}.{sub}" if path and sub else (sub or path))
        return items
    if isinstance(detail, list):
        if all(not isinstance(v, (dict, list)) for v in detail):
            return [{"path": path, "message": str(v)} for v in detail]
        items = []
        for index, value in enumerate(detail):
            items += _flatten(value, f"{path}[{index}]")
        return items
    return [{"path": path, "message": str(detail)}]


def exception_handler(exc, context):
    if isinstance(exc, RequestDataTooBig):
        return Response(
            {
                "detail": "Request body is larger than the configured limit.",
                "errors": [{"path": "", "message": str(exc)}],
            },
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.UnsupportedMediaType):
        response.data = {"detail": NOT_JSON.format(context["request"].content_type)}
    elif isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
        response.data = {"detail": errors[0]["message"] if len(errors) == 1 else "Invalid request.", "errors": errors}
    elif isinstance(response.data, dict) and "detail" in response.data:
        response.data = {"detail": str(response.data["detail"])}
    return response


@csrf_exempt  # like the API views: it writes nothing, and API clients carry no CSRF cookie
def missing_trailing_slash(request: HttpRequest, path: str) -> HttpResponse:
    """Any /api/ path without its trailing slash (routed last under /api/).

    Where the path with the slash is an endpoint, GET and HEAD are redirected as
    APPEND_SLASH does everywhere else; any other method gets a JSON 404 naming the
    URL to use, because a redirect would turn the POST into a GET and drop its body.
    """
    if not is_valid_path(f"{request.path_info}/", getattr(request, "urlconf", None)):
        raise Http404(request.path)  # the project's handler404 answers JSON under /api/
    if request.method in ("GET", "HEAD"):
        return HttpResponsePermanentRedirect(request.get_full_path(force_append_slash=True))
    message = f"use the trailing slash: {request.method} {request.path}/"
    return JsonResponse({"detail": message, "errors": [{"path": "", "message": message}]}, status=404)


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, but a body nested too deep is a 400, never a 500.

    Past ``TRAMA_MAX_JSON_DEPTH`` levels, the recursive code downstream (the
    database driver's JSON encoder, templates, rules) could exhaust the stack.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - nested too deeply") from None
        limit = settings.TRAMA_MAX_JSON_DEPTH
        if nesting_depth(data, limit) > limit:
            raise exceptions.ParseError(f"JSON nested too deeply: more than {limit} levels (TRAMA_MAX_JSON_DEPTH)")
        return data


class Pagination(pagination.LimitOffsetPagination):
    """``limit`` / ``offset`` pagination whose parameters are checked: a bad value is a 400 naming it.

    DRF's own falls back to the default for a bad value and has no maximum, so
    ``?limit=99999999999999999999`` reached PostgreSQL (a 500) and any client
    could ask for every row at once.
    """

    default_limit = 50
    max_limit = 500
    max_offset = 1_000_000_000  # far past any real list; keeps LIMIT + OFFSET inside PostgreSQL's bigint
    limit_query_description = f"Number of results per page: 1 to {max_limit} (default {default_limit})."
    offset_query_description = f"Index of the first result: 0 to {max_offset} (default 0)."

    def get_limit(self, request) -> int:
        return _integer_param(request, self.limit_query_param, 1, self.max_limit, self.default_limit)

    def get_offset(self, request) -> int:
        return _integer_param(request, self.offset_query_param, 0, self.max_offset, 0)


def _integer_param(request, name: str, low: int, high: int, default: int) -> int:
    """Query parameter ``name`` as an integer in [low, high]; absent or empty gives ``default``."""
    raw = request.query_params.get(name, "")
    if raw == "":
        return default
    # At most as many digits as ``high``: int() of a huge string is slow, and its value is out of range anyway.
    if re.fullmatch(r"[0-9]+", raw) and len(raw) <= len(str(high)) and low <= int(raw) <= high:
        return int(raw)
    raise exceptions.ValidationError({name: f"{name} must be an integer from {low} to {high}, got {raw!r}"})
