"""The callback receiver. No API token: the signed callback token is the credential."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import ParseError, UnsupportedMediaType
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from executions import telemetry
from executions.callbacks.services import receive_callback
from trama_project.api import ErrorSerializer

CallbackAnswer = inline_serializer(
    "CallbackAnswer", {"detail": serializers.CharField(), "execution": serializers.UUIDField(required=False)}
)
TOKEN_HEADER = OpenApiParameter(
    "X-Trama-Callback-Token", OpenApiTypes.STR, OpenApiParameter.HEADER, description="The token, if not in the URL."
)

CALLBACK_SCHEMA = dict(
    tags=["callbacks"],
    summary="Deliver an async node's callback",
    description=(
        'Body: {"status": "succeeded" | "failed" | "running", "output": {...}}. A body without status counts '
        "as succeeded; 'running' is a heartbeat that extends the deadline; any other status is a 400 (unless "
        "the node's callback.success_when / failure_when rules decide). A failed callback's 'error' field "
        "becomes the message of the execution's error."
    ),
    parameters=[TOKEN_HEADER],
    request=OpenApiTypes.OBJECT,
    responses={
        202: CallbackAnswer,
        200: CallbackAnswer,
        400: ErrorSerializer,
        403: ErrorSerializer,
        404: ErrorSerializer,
        409: ErrorSerializer,
        410: ErrorSerializer,
    },
)


class CallbackView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(operation_id="callbacks_receive", **CALLBACK_SCHEMA)
    def post(self, request, token: str | None = None):
        return self.receive(request, token or request.headers.get("X-Trama-Callback-Token", ""))

    @staticmethod
    def receive(request, token: str, route: tuple[str, str] | None = None) -> Response:
        """Deliver the callback in ``request`` with ``token``; ``route`` (execution, node) as the URL names them."""
        if not token:
            telemetry.callback_rejected("no_token")
            return Response({"detail": "no callback token in the URL or X-Trama-Callback-Token"}, status=403)
        try:
            body = request.data if request.body else {}
        except (ParseError, UnsupportedMediaType) as exc:
            telemetry.callback_rejected("bad_body")
            return Response({"detail": f"malformed callback body: {exc.detail}"}, status=400)
        answer = receive_callback(token, body, route)
        telemetry.callback_answered(answer.status)
        payload = {"detail": answer.detail}
        if answer.field:
            payload["errors"] = [{"path": answer.field, "message": answer.detail}]
        if answer.execution_id:
            payload["execution"] = answer.execution_id
        return Response(payload, status=answer.status)


class CallbackByHeaderView(CallbackView):
    """The same receiver, for services that send the token only in X-Trama-Callback-Token."""

    @extend_schema(operation_id="callbacks_receive_by_header", **CALLBACK_SCHEMA)
    def post(self, request, token: str | None = None):
        return super().post(request, token)
