"""The Trainings API: read-only JSON about trainings and institutes, for partners.

Plain Django views. Every answer, errors included, is JSON; every request needs an API
key (the `X-API-Key` header, or the `api_key` query parameter). The `url` of an object is
the one webhook changes point to (changes.kinds: API_BASE_URL + /trainings/<id> or
/institutes/<id>).
"""

import functools
import re
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.cache import patch_cache_control
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt

from catalog.models import Institute, Training
from catalog.selectors import (
    PageOutOfRange,
    institute_get,
    institute_trainings_page,
    training_get,
)
from catalog.services import api_key_check
from changes.kinds import INSTITUTE, TRAINING

PAGE_SIZE_DEFAULT = 100
PAGE_SIZE_MAX = 1000
API_KEY_HEADER = "X-API-Key"
API_KEY_PARAMETER = "api_key"
ALLOWED_METHODS = ("GET", "HEAD")
# Paths the API owns: Django's own 400/404/500 answers for these are JSON too.
_API_PATH = re.compile(r"^/(trainings|institutes)([/.]|$)")
# Page numbers and sizes: ASCII digits only, and few enough that OFFSET stays an integer.
_POSITIVE_INT = re.compile(r"0*[1-9][0-9]{0,8}")


# --- Representations ---------------------------------------------------------------------


def institute_trainings_url(institute_id: int, **query: int) -> str:
    url = INSTITUTE.url(institute_id) + TRAINING.api_path
    return f"{url}?{urlencode(query)}" if query else url


def _timestamp(value: datetime) -> str:
    # RFC 3339 in UTC with microseconds always present, so that every timestamp has the
    # same shape and keeps the database's precision (partners compare updated_at).
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def training_data(training: Training) -> dict:
    return {
        "id": training.pk,
        "institute": training.institute_id,
        "reference": training.reference,
        "name": training.name,
        "description": training.description,
        # A string, so that no JSON parser turns 12.50 into a binary float.
        "price": None if training.price is None else f"{training.price:.2f}",
        "created_at": _timestamp(training.created_at),
        "updated_at": _timestamp(training.updated_at),
        "url": TRAINING.url(training.pk),
    }


def institute_data(institute: Institute) -> dict:
    return {
        "id": institute.pk,
        "name": institute.name,
        "created_at": _timestamp(institute.created_at),
        "updated_at": _timestamp(institute.updated_at),
        "url": INSTITUTE.url(institute.pk),
        "trainings_url": institute_trainings_url(institute.pk),
    }


# --- Errors ------------------------------------------------------------------------------


def error_response(status: int, error: str, message: str) -> JsonResponse:
    response = JsonResponse({"error": error, "message": message}, status=status)
    patch_cache_control(response, private=True)
    return response


def _unauthorized(message: str) -> JsonResponse:
    response = error_response(401, "unauthorized", message)
    response["WWW-Authenticate"] = "ApiKey"
    return response


def _is_api_path(request: HttpRequest) -> bool:
    return bool(_API_PATH.match(request.path_info))


def bad_request_handler(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler400: JSON for the API's paths, Django's page for the rest (the admin)."""
    if _is_api_path(request):
        return error_response(400, "bad_request", "The request could not be understood.")
    return defaults.bad_request(request, exception)


def not_found_handler(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler404: JSON for the API's paths, Django's page for the rest (the admin)."""
    if _is_api_path(request):
        return error_response(404, "not_found", f"There is nothing at {request.path}.")
    return defaults.page_not_found(request, exception)


def server_error_handler(request: HttpRequest) -> HttpResponse:
    """handler500: JSON for the API's paths, Django's page for the rest (the admin).

    Django has logged the exception with its traceback before calling this.
    """
    if _is_api_path(request):
        return error_response(
            500, "server_error", "The server failed to answer; the error has been logged."
        )
    return defaults.server_error(request)


# --- Views -------------------------------------------------------------------------------


def api_view(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Make `view` an API endpoint: GET/HEAD only, an API key required, JSON errors.

    The method is checked before the key, so that a wrong method costs no query. CSRF
    checks are off: the API is read-only and has no cookie session to protect, and the
    middleware would otherwise answer a POST with an HTML 403 instead of the JSON 405.
    """

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.method not in ALLOWED_METHODS:
            response = error_response(
                405,
                "method_not_allowed",
                f"{request.method} is not allowed here; the API is read-only: use GET.",
            )
            response["Allow"] = ", ".join(ALLOWED_METHODS)
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
        response = view(request, *args, **kwargs)
        # Answers depend on the key: a shared cache must not hand them to someone without.
        patch_cache_control(response, private=True)
        return response

    return csrf_exempt(wrapper)


def _positive_int_parameter(request: HttpRequest, name: str, default: int) -> int:
    raw = request.GET.get(name)
    if raw is None:
        return default
    if not _POSITIVE_INT.fullmatch(raw):
        raise ValueError(f"{name} must be a whole number, 1 or more, got {raw!r}.")
    return int(raw)


@api_view
def training_detail(request: HttpRequest, training_id: int) -> JsonResponse:
    training = training_get(training_id=training_id)
    if training is None:
        return error_response(404, "not_found", f"Training {training_id} does not exist.")
    return JsonResponse(training_data(training))


@api_view
def institute_detail(request: HttpRequest, institute_id: int) -> JsonResponse:
    institute = institute_get(institute_id=institute_id)
    if institute is None:
        return error_response(404, "not_found", f"Institute {institute_id} does not exist.")
    return JsonResponse(institute_data(institute))


@api_view
def institute_trainings(request: HttpRequest, institute_id: int) -> JsonResponse:
    """The institute's trainings by id, a page at a time (`page`, `page_size` ≤ 1000)."""
    try:
        page = _positive_int_parameter(request, "page", 1)
        # Larger sizes are capped rather than refused: a client asking for "all" gets the
        # most we serve, and the `next` link tells it there is more.
        page_size = min(
            _positive_int_parameter(request, "page_size", PAGE_SIZE_DEFAULT), PAGE_SIZE_MAX
        )
    except ValueError as error:
        return error_response(400, "bad_request", str(error))
    try:
        result = institute_trainings_page(institute_id=institute_id, page=page, page_size=page_size)
    except PageOutOfRange as error:
        return error_response(
            404,
            "not_found",
            f"Page {error.page} does not exist: institute {institute_id} has "
            f"{error.last_page} page{'s' if error.last_page != 1 else ''} of trainings "
            f"at page_size {page_size}.",
        )
    if result is None:
        return error_response(404, "not_found", f"Institute {institute_id} does not exist.")

    def page_url(number: int) -> str:
        # Links carry no API key (the client adds its own) and no .json suffix.
        if page_size == PAGE_SIZE_DEFAULT:
            return institute_trainings_url(institute_id, page=number)
        return institute_trainings_url(institute_id, page=number, page_size=page_size)

    return JsonResponse(
        {
            "count": result.count,
            "next": page_url(page + 1) if result.has_next else None,
            "previous": page_url(page - 1) if result.has_previous else None,
            "results": [training_data(training) for training in result.trainings],
        }
    )
