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
    editor = serializers.DictField(
        required=False,
        help_text='How the pages draw it: {"direction": "TB" | "LR", "positions": {node id: [x, y]}}; not part '
        "of the spec (docs/definitions.md).",
    )


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
