"""Views of the project itself (the apps' own views live in the apps)."""

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_safe

from springhook.openapi import openapi_document


@require_safe
def openapi_json(request: HttpRequest) -> JsonResponse:
    """The OpenAPI 3.1 description of the Trainings API and the webhook; needs no API key,
    so that partners can read it before they have one."""
    return JsonResponse(openapi_document(), json_dumps_params={"indent": 2})
