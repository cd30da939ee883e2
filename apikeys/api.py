"""What every JSON endpoint shares: error answers, the API key check, page parameters.

The Trainings API (catalog.api) and the partners' webhook endpoints (deliveries.api) are
plain Django views decorated with `api_view`. Every answer, errors included, is JSON with
a stable `error` code and a `message` for people.
"""

import functools
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.cache import patch_cache_control
from django.views.decorators.csrf import csrf_exempt

from apikeys.services import api_key_check
from core.timestamps import TimestampError, timestamp_parse

API_KEY_HEADER = "X-API-Key"
API_KEY_PARAMETER = "api_key"
READ_METHODS = ("GET", "HEAD")
PAGE_SIZE_DEFAULT = 100
PAGE_SIZE_MAX = 1000
# Page numbers and sizes: ASCII digits only, and few enough that OFFSET stays an integer.
_POSITIVE_INT = re.compile(r"0*[1-9][0-9]{0,8}")


class ApiError(Exception):
    """Raised by a view (or a parameter parser) to answer with this JSON error."""

    def __init__(self, status: int, error: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.headers = headers or {}

    def response(self) -> JsonResponse:
        response = error_response(self.status, self.error, self.message)
        for name, value in self.headers.items():
            response[name] = value
        return response


def timestamp(value: datetime) -> str:
    """RFC 3339 in UTC with microseconds always present, so that every timestamp has the
    same shape and keeps the database's precision (partners compare updated_at)."""
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def error_response(status: int, error: str, message: str) -> JsonResponse:
    response = JsonResponse({"error": error, "message": message}, status=status)
    patch_cache_control(response, private=True)
    return response


def bad_request(message: str) -> ApiError:
    return ApiError(400, "bad_request", message)


def not_found(message: str) -> ApiError:
    return ApiError(404, "not_found", message)


def _unauthorized(message: str) -> JsonResponse:
    response = error_response(401, "unauthorized", message)
    response["WWW-Authenticate"] = "ApiKey"
    return response


def api_view(
    view: Callable[..., HttpResponse] | None = None, *, methods: Sequence[str] = READ_METHODS
):
    """Make `view` an API endpoint: only `methods` (GET/HEAD by default), an API key
    required (`request.api_key`), JSON errors (a raised ApiError becomes its answer).

    The method is checked before the key, so that a wrong method costs no query. CSRF
    checks are off: the API has no cookie session to protect (a key authenticates each
    request), and the middleware would otherwise answer with an HTML 403.
    """
    if view is None:
        return functools.partial(api_view, methods=methods)
    allowed = tuple(methods)

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.method not in allowed:
            verbs = " or ".join(method for method in allowed if method != "HEAD")
            response = error_response(
                405, "method_not_allowed", f"{request.method} is not allowed here: use {verbs}."
            )
            response["Allow"] = ", ".join(allowed)
            return response
        # The header wins; the query parameter is for clients that cannot set headers
        # (it ends up in access logs, so the header is the one to recommend).
        raw_key = request.headers.get(API_KEY_HEADER) or request.GET.get(API_KEY_PARAMETER)
        if not raw_key:
            return _unauthorized(
                f"An API key is required: send it in the {API_KEY_HEADER} header "
                f"or the {API_KEY_PARAMETER} query parameter."
            )
        request.api_key = api_key_check(raw_key=raw_key)
        if request.api_key is None:
            return _unauthorized("The API key is not valid: it is unknown or was revoked.")
        try:
            response = view(request, *args, **kwargs)
        except ApiError as error:
            response = error.response()
        # Answers depend on the key: a shared cache must not hand them to someone without.
        patch_cache_control(response, private=True)
        return response

    return csrf_exempt(wrapper)


def positive_int_parameter(request: HttpRequest, name: str, default: int) -> int:
    """The query parameter `name` as a whole number of 1 or more; ApiError 400 if not."""
    raw = request.GET.get(name)
    if raw is None:
        return default
    if not _POSITIVE_INT.fullmatch(raw):
        raise bad_request(f"{name} must be a whole number, 1 or more, got {raw!r}.")
    return int(raw)


def page_size_parameter(request: HttpRequest) -> int:
    # Larger sizes are capped rather than refused: a client asking for "all" gets the most
    # we serve, and the `next` link tells it there is more.
    return min(positive_int_parameter(request, "page_size", PAGE_SIZE_DEFAULT), PAGE_SIZE_MAX)


def choice_parameter(request: HttpRequest, name: str, choices: Sequence[str]) -> str | None:
    """The query parameter `name`, one of `choices`, or None when absent; 400 otherwise."""
    raw = request.GET.get(name)
    if raw is None or raw == "":
        return None
    if raw not in choices:
        raise bad_request(f"{name} must be one of {', '.join(choices)}; got {raw!r}.")
    return raw


def link(url: str, **query: object) -> str:
    """`url` with the query parameters that are not None. Links the API hands out carry
    no API key (the client adds its own) and no .json suffix."""
    present = {name: value for name, value in query.items() if value is not None}
    # A list value is a repeated parameter (`institute=1&institute=2`).
    return f"{url}?{urlencode(present, doseq=True)}" if present else url


def page_answer(*, count: int, next_url: str | None, previous_url: str | None,
                results: list) -> JsonResponse:
    """A page of a list: `count` (all pages), `next`, `previous` (links or null), `results`."""
    return JsonResponse(
        {"count": count, "next": next_url, "previous": previous_url, "results": results}
    )


def time_value(raw: str, name: str) -> datetime:
    """`raw` as an RFC 3339 date and time with its offset (`2026-11-29T19:49:52Z`), for
    the parameter `name`, in UTC; ApiError 400 naming it otherwise (core.timestamps says
    what every database can compare)."""
    # A "+01:00" offset sent without URL encoding arrives as " 01:00".
    text = str(raw).strip().replace(" ", "+")
    try:
        return timestamp_parse(text)
    except TimestampError as error:
        raise bad_request(
            f"{name} must be an RFC 3339 date and time with its offset (at most ±14:00, "
            "in the years 1 to 9999), like 2026-11-29T19:49:52Z or "
            f"2026-11-29T20:49:52+01:00; got {raw!r} ({error})."
        ) from None
