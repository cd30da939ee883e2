"""A partner's own key: rotate it (a new one replaces it at once) or revoke it."""

from django.http import HttpRequest, JsonResponse

from apikeys.api import api_view, timestamp
from apikeys.services import api_key_revoke, api_key_rotate


@api_view(methods=("POST",))
def api_key_rotate_view(request: HttpRequest) -> JsonResponse:
    """The key that made the request is replaced by a new one, in this answer only."""
    new, raw_key = api_key_rotate(api_key_id=request.api_key.pk)
    response = JsonResponse({
        "key": raw_key,
        "prefix": new.prefix,
        "created_at": timestamp(new.created_at),
        "message": f"Your API key {request.api_key.prefix}… was replaced by this one and no "
        "longer works. Store the new key now: it is shown only in this answer.",
    }, status=201)
    response["Cache-Control"] = "no-store, private"
    return response


@api_view(methods=("POST",))
def api_key_revoke_view(request: HttpRequest) -> JsonResponse:
    """The key that made the request stops working at once."""
    api_key = api_key_revoke(api_key_id=request.api_key.pk)
    return JsonResponse({
        "prefix": api_key.prefix,
        "message": f"Revoked the API key {api_key.prefix}…: every request with it is now "
        "refused (401). Staff can give you a new one.",
    })
