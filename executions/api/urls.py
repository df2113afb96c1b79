from django.urls import path

from executions.api import views

urlpatterns = [
    path("executions/", views.ExecutionListCreateView.as_view(), name="execution-list"),
    path("executions/<uuid:pk>/", views.ExecutionDetailView.as_view(), name="execution-detail"),
    path("executions/<uuid:pk>/steps/", views.ExecutionStepsView.as_view(), name="execution-steps"),
    path("executions/<uuid:pk>/cancel/", views.ExecutionCancelView.as_view(), name="execution-cancel"),
    path("executions/<uuid:pk>/retry/", views.ExecutionRetryView.as_view(), name="execution-retry"),
    path("executions/<uuid:pk>/wake/", views.ExecutionWakeView.as_view(), name="execution-wake"),
]
