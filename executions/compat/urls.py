from django.urls import path

from executions.compat import views

# The original's paths, without trailing slashes, as it serves them (app/Application.kt).
urlpatterns = [
    path("workflows", views.WorkflowListView.as_view(), name="original-workflows"),
    path("workflows/run", views.RunInlineView.as_view(), name="original-run"),
    path("workflows/definitions", views.DefinitionsView.as_view(), name="original-definitions"),
    path("workflows/definitions/<str:pk>", views.DefinitionByIdView.as_view(), name="original-definition"),
    path(
        "workflows/definitions/<str:name>/<str:version>",
        views.DefinitionByNameVersionView.as_view(),
        name="original-definition-version",
    ),
    path(
        "workflows/definitions/<str:name>/<str:version>/run",
        views.RunStoredView.as_view(),
        name="original-run-stored",
    ),
    path("workflows/<str:pk>", views.WorkflowView.as_view(), name="original-workflow"),
    path("workflows/<str:pk>/steps", views.WorkflowStepsView.as_view(), name="original-steps"),
    path("workflows/<str:pk>/steps/calls", views.WorkflowCallsView.as_view(), name="original-calls"),
    path("workflows/<str:pk>/retry", views.RetryView.as_view(), name="original-retry"),
    path("workflows/<str:pk>/wake", views.WakeView.as_view(), name="original-wake"),
    path(
        "workflows/<str:execution_id>/node/<str:node_id>/callback",
        views.NodeCallbackView.as_view(),
        name="original-callback",
    ),
]
