from django.urls import path

from executions.api import simulation, views

urlpatterns = [
    # Under definitions/ for the reader; definitions.api.urls leaves "simulate" to this route.
    path("definitions/simulate/", simulation.DefinitionSimulateView.as_view(), name="definition-simulate"),
    path("executions/", views.ExecutionListCreateView.as_view(), name="execution-list"),
    path("executions/<str:pk>/", views.ExecutionDetailView.as_view(), name="execution-detail"),
    path("executions/<str:pk>/steps/", views.ExecutionStepsView.as_view(), name="execution-steps"),
    path("executions/<str:pk>/cancel/", views.ExecutionCancelView.as_view(), name="execution-cancel"),
    path("executions/<str:pk>/retry/", views.ExecutionRetryView.as_view(), name="execution-retry"),
    path("executions/<str:pk>/wake/", views.ExecutionWakeView.as_view(), name="execution-wake"),
    path("executions/<str:pk>/rerun/", views.ExecutionRerunView.as_view(), name="execution-rerun"),
    path("executions/<str:pk>/complete/", views.ExecutionCompleteCallbackView.as_view(), name="execution-complete"),
]
