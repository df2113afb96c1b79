from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.views import defaults


def healthz(request):
    """Liveness that includes the database: 200 when a query answers, 503 otherwise."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any database failure means "not healthy", never a 500
        return JsonResponse({"status": "unhealthy", "database": str(exc.__class__.__name__)}, status=503)
    return JsonResponse({"status": "ok", "database": "ok"})


def readyz(request):
    """Readiness as the original Trama answers it (``/readyz``): the text ``ready``, or 503 with its error shape."""
    answer = healthz(request)
    if answer.status_code != 200:
        return JsonResponse({"errors": ["database unavailable"]}, status=503)
    return HttpResponse("ready", content_type="text/plain")


def not_found(request, exception=None):
    """Unknown URLs under /api/ answer JSON like the rest of the API; elsewhere Django's page."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": f"no API endpoint at {request.path}"}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    """Never a traceback to the user: a JSON body for the API, Django's plain page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "internal error; it has been logged"}, status=500)
    return defaults.server_error(request)
