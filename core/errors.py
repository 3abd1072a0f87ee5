"""Error pages and API error bodies (handler400/403/404/500).

Paths under /api/ get JSON `{"detail": ...}`; pages get a small standalone HTML page that
needs no database (no user, no context processors), so it renders even when the error *is*
the database.

A dropped or refused database connection (OperationalError / InterfaceError, e.g. the
server restarted or an operator terminated the backend) is answered 503 with Retry-After,
never 500. The broken connection is closed here, so the next request opens a fresh one.
When the failed request was a form POST, the page shows what was typed, in a form that
posts it again to the same address: no decision a reviewer typed is lost.
"""

import logging
import sys

from django.db import InterfaceError, OperationalError, connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.template import loader

from core.limits import is_api

log = logging.getLogger(__name__)

DATABASE_ERRORS = (OperationalError, InterfaceError)
RETRY_AFTER_SECONDS = 5
# Never echoed back into a page.
_SECRET_FIELDS = ("csrfmiddlewaretoken",)
_SECRET_HINTS = ("password", "secret", "token")


def _page(request: HttpRequest, template: str, context: dict, status: int) -> HttpResponse:
    html = loader.get_template(template).render({"request_path": request.path, **context})
    return HttpResponse(html, status=status)


def bad_request(request: HttpRequest, exception=None) -> HttpResponse:
    if is_api(request):
        return JsonResponse({"detail": "bad request"}, status=400)
    return _page(request, "errors/400.html", {}, 400)


def permission_denied(request: HttpRequest, exception=None) -> HttpResponse:
    """A signed-in user who lacks a role keeps the site's navigation (the page extends
    base.html, with the context processors); if that cannot render (the database went away
    meanwhile), the standalone page."""
    if is_api(request):
        return JsonResponse({"detail": "forbidden"}, status=403)
    try:
        return HttpResponse(
            loader.render_to_string("errors/403_page.html", {}, request=request), status=403
        )
    except DATABASE_ERRORS:
        return _page(request, "errors/403.html", {}, 403)


def page_not_found(request: HttpRequest, exception=None) -> HttpResponse:
    if is_api(request):
        return JsonResponse({"detail": "not found"}, status=404)
    return _page(request, "errors/404.html", {}, 404)


def server_error(request: HttpRequest) -> HttpResponse:
    exc = sys.exc_info()[1]
    if isinstance(exc, DATABASE_ERRORS):
        return database_unavailable(request, exc)
    if is_api(request):
        return JsonResponse({"detail": "internal error; it has been logged"}, status=500)
    return _page(request, "errors/500.html", {}, 500)


def _close_broken_connections() -> None:
    for conn in connections.all(initialized_only=True):
        try:
            conn.close()
        except Exception:  # already dead; closing is best effort
            log.debug("closing a broken connection failed", exc_info=True)


def _typed_fields(request: HttpRequest) -> list[dict]:
    if request.method != "POST":
        return []
    try:
        data = request.POST
    except Exception:  # an unreadable body: nothing to give back
        return []
    fields = []
    for name in data:
        lowered = name.lower()
        if name in _SECRET_FIELDS or any(hint in lowered for hint in _SECRET_HINTS):
            continue
        fields.extend(
            {"name": name, "value": value, "long": len(value) > 60 or "\n" in value}
            for value in data.getlist(name)
        )
    return fields


def database_unavailable(request: HttpRequest, exc: BaseException) -> HttpResponse:
    """503 for a database that dropped or refused the connection."""
    log.warning("database unavailable during %s %s: %s", request.method, request.path, exc)
    _close_broken_connections()
    if is_api(request):
        response: HttpResponse = JsonResponse(
            {"detail": "The database is briefly unavailable; nothing was saved. Retry."},
            status=503,
        )
    else:
        fields = _typed_fields(request)
        response = _page(
            request,
            "errors/503_database.html",
            {
                "fields": fields,
                "action": request.get_full_path(),
                "csrf_token": get_token(request) if fields else "",
                "htmx": request.headers.get("HX-Request") == "true",
            },
            503,
        )
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
