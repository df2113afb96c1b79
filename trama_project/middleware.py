"""Refuse oversized request bodies with a JSON 413 before anything reads them."""

from django.conf import settings
from django.http import JsonResponse


class BodySizeLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return JsonResponse({"detail": "Content-Length header is not a number."}, status=400)
        limit = settings.TRAMA_MAX_REQUEST_BYTES
        if length > limit:
            message = f"request body is {length} bytes; the limit is {limit} (TRAMA_MAX_REQUEST_BYTES)"
            return JsonResponse({"detail": message, "errors": [{"path": "", "message": message}]}, status=413)
        return self.get_response(request)
