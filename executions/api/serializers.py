import difflib
import json

from django.conf import settings
from rest_framework import serializers

from executions.models import Execution, ExecutionStatus, Step


class ExecutionStartSerializer(serializers.Serializer):
    """Start a stored definition by name (and optional version), or an inline ``spec``."""

    definition = serializers.CharField(required=False, max_length=200, help_text="Name of a stored definition.")
    version = serializers.IntegerField(required=False, min_value=1, help_text="Default: the latest version.")
    spec = serializers.JSONField(required=False, help_text="An inline definition instead of a stored one.")
    input = serializers.JSONField(required=False, default=dict, help_text="The payload; a JSON object.")

    def validate_input(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("must be a JSON object")
        size = len(json.dumps(value))
        if size > settings.TRAMA_MAX_INPUT_BYTES:
            raise serializers.ValidationError(
                f"input is {size} bytes of JSON; the limit is {settings.TRAMA_MAX_INPUT_BYTES} (TRAMA_MAX_INPUT_BYTES)"
            )
        return value

    def validate(self, attrs):
        self._refuse_unknown_fields()
        if ("definition" in attrs) == ("spec" in attrs):
            raise serializers.ValidationError({"definition": "give either 'definition' (a stored name) or 'spec'"})
        if "version" in attrs and "spec" in attrs:
            raise serializers.ValidationError({"version": "applies to a stored definition, not an inline spec"})
        return attrs

    def _refuse_unknown_fields(self) -> None:
        """A misspelt field ("definiton") is named, not silently dropped."""
        sent = self.initial_data if isinstance(self.initial_data, dict) else {}
        unknown = sorted(set(sent) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({name: _unknown_field(name, list(self.fields)) for name in unknown})


def _unknown_field(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    if close:
        return f"unknown field; did you mean '{close[0]}'?"
    return f"unknown field; the fields are {', '.join(known)}"


class ExecutionSerializer(serializers.ModelSerializer):
    definition = serializers.CharField(source="definition.name", read_only=True)
    version = serializers.IntegerField(source="definition.version", read_only=True)
    inline = serializers.BooleanField(source="definition.is_inline", read_only=True)
    wake_at = serializers.SerializerMethodField(help_text="When a SLEEPING or WAITING execution is next looked at.")

    class Meta:
        model = Execution
        fields = [
            "id",
            "definition",
            "version",
            "inline",
            "parent",
            "branch",
            "status",
            "input",
            "output",
            "error",
            "current_node",
            "wake_at",
            "created_at",
            "started_at",
            "finished_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_wake_at(self, execution: Execution) -> str | None:
        if execution.status in (ExecutionStatus.SLEEPING, ExecutionStatus.WAITING) and execution.due_at:
            return execution.due_at.isoformat()
        return None


class ExecutionAcceptedSerializer(serializers.Serializer):
    """The 202 answer to a start: enough to follow the execution (``Location`` points at it).

    Deliberately small: every start pays for this body, and the client sent the
    input itself; ``GET executions/{id}/`` has the rest.
    """

    id = serializers.UUIDField(read_only=True)
    definition = serializers.CharField(source="definition.name", read_only=True)
    version = serializers.IntegerField(source="definition.version", read_only=True)
    inline = serializers.BooleanField(source="definition.is_inline", read_only=True)
    status = serializers.ChoiceField(choices=ExecutionStatus.choices, read_only=True)
    created_at = serializers.DateTimeField(read_only=True)


class StepSerializer(serializers.ModelSerializer):
    execution = serializers.UUIDField(source="execution_id", read_only=True)
    branch = serializers.CharField(
        source="execution.branch", read_only=True, help_text="The parallel branch it ran in ('' for the main line)."
    )

    class Meta:
        model = Step
        fields = [
            "execution",
            "branch",
            "seq",
            "node_id",
            "node_type",
            "phase",
            "attempt",
            "status",
            "request",
            "response_status",
            "response_headers",
            "response_body",
            "detail",
            "error",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class CancelSerializer(serializers.Serializer):
    compensate = serializers.BooleanField(default=True, help_text="Run the compensations of the steps that succeeded.")


class EmptySerializer(serializers.Serializer):
    """No fields."""


class RetrySerializer(serializers.Serializer):
    skip = serializers.BooleanField(default=False, help_text="Skip a compensation that failed for good.")


class RerunSerializer(serializers.Serializer):
    """A new execution of the same definition: the same input unless ``input`` is given."""

    input = serializers.JSONField(required=False, help_text="The new execution's input (default: the same input).")
    latest = serializers.BooleanField(default=False, help_text="Start the latest version instead of the pinned one.")

    def validate_input(self, value):
        return ExecutionStartSerializer().validate_input(value)


class CompleteCallbackSerializer(serializers.Serializer):
    """Answer the callback the execution waits for by hand, as the service would have."""

    status = serializers.ChoiceField(choices=["succeeded", "failed"], help_text="The callback's outcome.")
    body = serializers.DictField(default=dict, help_text="The callback body to record (secrets are masked).")


# --- Simulation (POST definitions/simulate/) ---------------------------------------------------


class SimulateSerializer(serializers.Serializer):
    """A dry run: a definition (inline ``definition``, or a stored ``name`` and optional ``version``),
    an input and mocked answers per node. The definition and the mocks are checked by the service,
    which reports every problem with its path."""

    definition = serializers.JSONField(required=False, help_text="A definition as an author writes it (not stored).")
    name = serializers.CharField(required=False, max_length=200, help_text="Or: the name of a stored definition.")
    version = serializers.IntegerField(required=False, min_value=1, help_text="With name: a version (default latest).")
    input = serializers.JSONField(default=dict, help_text="The execution's input payload.")
    mocks = serializers.JSONField(
        default=dict,
        help_text="node id -> {status, body, headers, fail_times, fail_status, timeout, callback, compensation}.",
    )
    max_steps = serializers.IntegerField(
        default=1000, min_value=1, max_value=10_000, help_text="Stop after this many history steps."
    )

    def validate(self, attrs):
        if ("definition" in attrs) == ("name" in attrs):
            raise serializers.ValidationError({"definition": "Send exactly one of definition or name."})
        if "version" in attrs and "name" not in attrs:
            raise serializers.ValidationError({"version": "version goes with name."})
        return attrs


class SimulatedResponseSerializer(serializers.Serializer):
    status = serializers.IntegerField()
    headers = serializers.DictField(child=serializers.CharField())
    body = serializers.JSONField(allow_null=True)


class SimulatedStepSerializer(serializers.Serializer):
    """One node attempt of the dry run, shaped like a history step."""

    node_id = serializers.CharField()
    node_type = serializers.CharField()
    phase = serializers.CharField()
    attempt = serializers.IntegerField()
    status = serializers.CharField()
    request = serializers.JSONField(allow_null=True, help_text="The rendered request, secrets shown as ***.")
    response = SimulatedResponseSerializer(allow_null=True, help_text="The mocked answer.")
    detail = serializers.JSONField(allow_null=True)
    error = serializers.JSONField(allow_null=True)
    started_at = serializers.CharField(help_text="On the simulated clock (sleeps and waits take no real time).")
    finished_at = serializers.CharField(allow_null=True)
    branch = serializers.CharField(
        allow_null=True, help_text="The parallel branch (its head node) this step ran in; null on the main line."
    )


class SimulationSerializer(serializers.Serializer):
    status = serializers.CharField(help_text="The final status (or the status reached at max_steps).")
    output = serializers.JSONField(allow_null=True)
    error = serializers.JSONField(allow_null=True)
    path = serializers.ListField(child=serializers.CharField(), help_text="Forward node ids, in the order entered.")
    steps = SimulatedStepSerializer(many=True)
    calls = serializers.IntegerField(help_text="HTTP calls that would have been made.")
