from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from trama_project.api import missing_trailing_slash
from trama_project.views import healthz, readyz

api_v1 = [
    path("", include("definitions.api.urls")),
    path("", include("executions.api.urls")),
    path("", include("executions.callbacks.urls")),
]

urlpatterns = [
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
    # Last under /api/: a path without its trailing slash gets JSON (or, for a GET, the redirect).
    re_path(r"^api/(?P<path>.*[^/])$", missing_trailing_slash),
    path("healthz", healthz, name="healthz"),
    # Browsers ask every page's host for /favicon.ico (the admin's pages too): answer instead of a 404.
    path("favicon.ico", RedirectView.as_view(url=static("graph_editor/favicon.svg"), permanent=True)),
    path("readyz", readyz, name="readyz"),
    path("", include("executions.compat.urls")),  # the original Trama's API, /workflows/... (docs/upstream.md)
    path("", include("executions.urls")),  # /metrics: django-prometheus' and trama_*, of every process
    path("admin/", admin.site.urls),
    path("", include("graph_editor.urls")),
]

handler404 = "trama_project.views.not_found"
handler500 = "trama_project.views.server_error"
