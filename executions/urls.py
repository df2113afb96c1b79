"""The engine's URLs outside the API: /metrics (executions/metrics.py)."""

from django.urls import path

from executions.metrics import export

urlpatterns = [path("metrics", export, name="prometheus-django-metrics")]
