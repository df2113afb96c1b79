"""``POST definitions/simulate/``: a dry run of a definition (executions/simulation.py).

Routed under definitions/ for the API's reader, served here because it runs the engine:
definitions does not import executions (docs/architecture.md, "Who imports whom").
"""

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from definitions.api.views import WRITE_ERRORS, invalid_response, stored_or_404
from definitions.services import DefinitionInvalid
from definitions.validation import validate_definition
from executions.api.serializers import SimulateSerializer, SimulationSerializer
from executions.simulation import SimulationTooLarge, mock_problems, simulate
from trama_project.api import ErrorSerializer


class DefinitionSimulateView(APIView):
    @extend_schema(
        tags=["definitions"],
        operation_id="definitions_simulate",
        summary="Dry-run a definition against mocked responses: no call made, nothing stored",
        request=SimulateSerializer,
        responses={200: SimulationSerializer, **WRITE_ERRORS, 404: ErrorSerializer},
    )
    def post(self, request):
        serializer = SimulateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        spec, label = self._spec(data)
        if isinstance(spec, list):
            return invalid_response(spec, str(DefinitionInvalid(spec)))
        problems = mock_problems(spec, data["mocks"])
        if problems:
            summary = f"{problems[0]['path']}: {problems[0]['message']}"
            return invalid_response(
                problems, summary if len(problems) == 1 else f"Mocks are invalid ({len(problems)} problems)."
            )
        try:
            result = simulate(spec, data["input"], data["mocks"], data["max_steps"], definition=label)
        except SimulationTooLarge as exc:
            return invalid_response([{"path": "max_steps", "message": str(exc)}], str(exc))
        return Response(SimulationSerializer(result.as_dict()).data)

    @staticmethod
    def _spec(data: dict) -> tuple[dict | list, tuple[str, int] | None]:
        """(normalized spec, (name, version)) of what to run; (errors, None) for an invalid inline definition."""
        if "definition" in data:
            result = validate_definition(data["definition"])
            errors = [{**e, "path": f"definition.{e['path']}" if e["path"] else "definition"} for e in result.errors]
            return (errors, None) if errors else (result.spec, None)
        found = stored_or_404(data["name"], data.get("version"))
        return found.spec, (found.name, found.version)
