"""Every answer outside the admin is JSON, errors included.

Django answers some errors before any view of ours runs, as HTML: a path that matches no
route (404, the technical page when DEBUG is on), a CSRF failure (403), a server error
(500), a bad request (400). For every path but the admin's and the partner portal's (the
two sites for people, with their own pages), this turns such an answer into the API's
JSON error, keeping its status and headers (Allow, Retry-After, ...). Answers that are
JSON already, and every answer of the admin and the portal, pass unchanged.
"""

from collections.abc import Callable
from http import HTTPStatus

from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from apikeys.api import error_response

_KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate", "Location")


class JsonErrorsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response
        self.html_prefixes: tuple[str, ...] | None = None

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code < 400 or self._is_json(response) or self._is_admin(request):
            return response
        return self._as_json(request, response)

    @staticmethod
    def _is_json(response: HttpResponse) -> bool:
        return response.get("Content-Type", "").startswith("application/json")

    def _is_admin(self, request: HttpRequest) -> bool:
        if self.html_prefixes is None:
            self.html_prefixes = (reverse("admin:index"), reverse("portal:home"))
        return request.path_info.startswith(self.html_prefixes)

    def _as_json(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        status = response.status_code
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        code, message = {
            400: ("bad_request", "The request could not be understood."),
            403: ("forbidden", "This request is not allowed."),
            404: ("not_found", f"There is nothing at {request.path}."),
            405: ("method_not_allowed", f"{request.method} is not allowed at {request.path}."),
            500: ("server_error", "The server failed to answer; the error has been logged."),
        }.get(status, (phrase.lower().replace(" ", "_").replace("-", "_"), f"{phrase}."))
        converted = error_response(status, code, message)
        for name in _KEPT_HEADERS:
            if name in response:
                converted[name] = response[name]
        # Django logs an error answer once, and marks it so; the mark must survive the
        # conversion, or the handler logs the same 500 a second time.
        if getattr(response, "_has_been_logged", False):
            converted._has_been_logged = True
        return converted
