"""Shapes of the definitions and expressions API (requests are documented, answers serialized)."""

from rest_framework import serializers

from definitions.models import Definition, DefinitionKind


class DefinitionSourceSerializer(serializers.Serializer):
    """A definition as an author writes it (SPEC 2.1/2.2). Documentation only: the body is checked by
    definitions.validation, which reports every problem with its JSON path."""

    name = serializers.CharField(max_length=200, help_text="Letters, digits, '_', '.', '-'; 1-200 characters.")
    kind = serializers.ChoiceField(choices=DefinitionKind.choices)
    description = serializers.CharField(required=False, help_text="A note for people; not part of the spec.")
    steps = serializers.ListField(
        child=serializers.DictField(), required=False, help_text="saga: the steps, run in order."
    )
    start = serializers.CharField(required=False, help_text="graph: the id of the first node.")
    nodes = serializers.DictField(child=serializers.DictField(), required=False, help_text="graph: node id -> node.")
    defaults = serializers.DictField(required=False, help_text="request, retry and timeout_s for every node.")
    notify = serializers.DictField(required=False, help_text="succeeded / failed requests sent when it ends.")


class DefinitionSummarySerializer(serializers.ModelSerializer):
    """One version, without its JSON (list answers)."""

    node_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Definition
        fields = ["name", "version", "kind", "node_count", "digest", "created_by", "created_at"]


class DefinitionSerializer(DefinitionSummarySerializer):
    """One version with the source as sent and the normalized spec the engine runs."""

    source = serializers.JSONField(help_text="The definition as it was sent.")
    spec = serializers.JSONField(help_text="The normalized definition (docs/normalized-spec.md).")

    class Meta(DefinitionSummarySerializer.Meta):
        fields = [*DefinitionSummarySerializer.Meta.fields, "source", "spec"]


class ValidationOkSerializer(serializers.Serializer):
    valid = serializers.BooleanField(help_text="Always true; an invalid definition answers 400.")
    spec = serializers.JSONField(help_text="The normalized definition that would be stored.")


class EvaluateSerializer(serializers.Serializer):
    # null is a rule too (a literal, like any scalar): it evaluates to null.
    rule = serializers.JSONField(allow_null=True, help_text="A JSON Logic rule, as in a switch case's `when`.")
    data = serializers.JSONField(default=dict, help_text="The data the rule reads with `var` (an object).")

    def validate_data(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("data must be a JSON object.")
        return value


class EvaluateResultSerializer(serializers.Serializer):
    result = serializers.JSONField(help_text="What the rule evaluated to.")


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


class SimulationSerializer(serializers.Serializer):
    status = serializers.CharField(help_text="The final status (or the status reached at max_steps).")
    output = serializers.JSONField(allow_null=True)
    error = serializers.JSONField(allow_null=True)
    path = serializers.ListField(child=serializers.CharField(), help_text="Forward node ids, in the order entered.")
    steps = SimulatedStepSerializer(many=True)
    calls = serializers.IntegerField(help_text="HTTP calls that would have been made.")


# --- Version diffs (GET definitions/{name}/versions/{a}/diff/{b}/) ------------------------------


class FieldChangeSerializer(serializers.Serializer):
    """``{"from", "to"}``; null on the side where the field does not exist."""

    def get_fields(self):
        # "from" is a Python keyword, so the fields cannot be declared as attributes.
        return {"from": serializers.JSONField(allow_null=True), "to": serializers.JSONField(allow_null=True)}


class ChangedNodeSerializer(serializers.Serializer):
    id = serializers.CharField()
    fields = serializers.DictField(child=FieldChangeSerializer(), help_text="dotted field -> {from, to}.")


class DefinitionDiffSerializer(serializers.Serializer):
    """What changed from version ``from_version`` to ``to_version``, on the normalized specs."""

    name = serializers.CharField()
    from_version = serializers.IntegerField()
    to_version = serializers.IntegerField()
    added = serializers.ListField(child=serializers.CharField(), help_text="Node ids only in to_version.")
    removed = serializers.ListField(child=serializers.CharField(), help_text="Node ids only in from_version.")
    changed = ChangedNodeSerializer(many=True)
    top_level = serializers.DictField(child=FieldChangeSerializer(), help_text="Top-level fields (start, notify…).")
