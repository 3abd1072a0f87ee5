"""Response headers every page of a signed-in user gets."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBase


class NoStoreForUsersMiddleware:
    """`Cache-Control: no-store, private` on every response to a signed-in user.

    Their pages show reviewed conversations, API token secrets and CSV downloads: neither a
    shared proxy nor the browser's back/forward or disk cache may keep them after logout.
    A response that set its own Cache-Control keeps it; static files never get here
    (WhiteNoise answers them earlier in the chain).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and not response.has_header("Cache-Control"):
            response["Cache-Control"] = "no-store, private"
        return response
