"""The pages' forms that take JSON typed in a textarea: the start form, and the operator actions' (operations.py)."""

import json
from typing import Any

from django import forms
from django.conf import settings

from trama_project.jsonvalues import nesting_depth


class JSONObjectField(forms.JSONField):
    """JSON typed in a textarea: a body nested too deep is a form error, never a 500 (as the API's parser)."""

    # Only a blank textarea is "no value": ``{}`` is an input like any other (Django's default counts
    # ``{}`` and ``[]`` as empty, so the start form refused the ``{}`` it offers with "This field is required.").
    empty_values = [None, ""]

    def to_python(self, value):
        try:
            return super().to_python(value)
        except RecursionError:
            raise forms.ValidationError("The JSON is nested too deeply.") from None


def json_object(value: Any, what: str) -> dict:
    """``value`` if it is a JSON object within the API's limits (size, nesting); a ValidationError naming ``what``."""
    if not isinstance(value, dict):
        raise forms.ValidationError(f"The {what} must be a JSON object.")
    limit = settings.TRAMA_MAX_JSON_DEPTH
    if nesting_depth(value, limit) > limit:
        raise forms.ValidationError(f"The {what} is nested more than {limit} levels deep.")
    size = len(json.dumps(value))
    if size > settings.TRAMA_MAX_INPUT_BYTES:
        raise forms.ValidationError(f"The {what} is {size} bytes; the limit is {settings.TRAMA_MAX_INPUT_BYTES}.")
    return value


class StartExecutionForm(forms.Form):
    """The ``input`` of a new execution; the same limits as POST /api/v1/executions/."""

    input = JSONObjectField(initial=dict, widget=forms.Textarea(attrs={"rows": 12, "spellcheck": "false"}))

    def clean_input(self):
        return json_object(self.cleaned_data["input"], "input")
