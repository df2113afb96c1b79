"""The start form: an input payload typed as JSON."""

import json

from django import forms
from django.conf import settings


class StartExecutionForm(forms.Form):
    """The ``input`` of a new execution; the same limits as POST /api/v1/executions/."""

    input = forms.JSONField(initial=dict, widget=forms.Textarea(attrs={"rows": 12, "spellcheck": "false"}))

    def clean_input(self):
        value = self.cleaned_data["input"]
        if not isinstance(value, dict):
            raise forms.ValidationError("The input must be a JSON object.")
        size = len(json.dumps(value))
        if size > settings.TRAMA_MAX_INPUT_BYTES:
            raise forms.ValidationError(f"The input is {size} bytes; the limit is {settings.TRAMA_MAX_INPUT_BYTES}.")
        return value
