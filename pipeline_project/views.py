"""Site-wide error handlers: the API answers in its own format, pages get friendly pages."""

from django.http import JsonResponse
from django.views import defaults


def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def page_not_found(request, exception):
    if _is_api(request):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if _is_api(request):
        return JsonResponse(
            {
                "detail": "Server error: the request failed. Try again, and tell IT if it keeps happening."
            },
            status=500,
        )
    return defaults.server_error(request)
