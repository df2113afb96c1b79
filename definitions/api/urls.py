from django.urls import path, register_converter

from definitions.api import views
from definitions.validation import RESERVED_NAMES


class DefinitionNameConverter:
    """A definition name; reserved names (``validate``, ``simulate``) do not match, so
    ``definitions/validate/`` and ``definitions/simulate/`` reach their own views,
    wherever those are routed."""

    regex = r"[^/]+"  # any segment: an unknown or malformed name answers a JSON 404 from the view

    def to_python(self, value: str) -> str:
        if value in RESERVED_NAMES:
            raise ValueError(value)
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(DefinitionNameConverter, "definition_name")

urlpatterns = [
    path("definitions/", views.DefinitionListCreateView.as_view(), name="definition-list"),
    path("definitions/validate/", views.DefinitionValidateView.as_view(), name="definition-validate"),
    path("definitions/<definition_name:name>/", views.DefinitionLatestView.as_view(), name="definition-latest"),
    path(
        "definitions/<definition_name:name>/versions/",
        views.DefinitionVersionListView.as_view(),
        name="definition-versions",
    ),
    path(
        "definitions/<definition_name:name>/versions/<int:version>/",
        views.DefinitionVersionView.as_view(),
        name="definition-version",
    ),
    path(
        "definitions/<definition_name:name>/versions/<int:version>/diff/<int:other>/",
        views.DefinitionDiffView.as_view(),
        name="definition-diff",
    ),
    path("expressions/evaluate/", views.ExpressionEvaluateView.as_view(), name="expression-evaluate"),
]
