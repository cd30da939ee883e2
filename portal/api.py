"""POST /portal-links: a partner's code asks for a sign-in link to the portal with its key."""

import json

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.urls import reverse
from django.utils.cache import add_never_cache_headers

from apikeys.api import ApiError, api_view, bad_request, timestamp
from portal.services import PortalLinkError, portal_link_create


def portal_link_url(raw_token: str) -> str:
    return settings.API_BASE_URL + reverse("portal:sign_in", args=[raw_token])


@api_view(methods=("POST",))
def portal_link_create_view(request: HttpRequest) -> JsonResponse:
    """A single-use sign-in link for the key's webhooks. Body (optional, JSON):
    `{"can_act": true}` for a link that may act; read-only by default."""
    can_act = False
    if request.body:
        try:
            data = json.loads(request.body)
        except ValueError:
            raise bad_request("The body must be JSON, e.g. {\"can_act\": true}.") from None
        if not isinstance(data, dict):
            raise bad_request("The body must be a JSON object, e.g. {\"can_act\": true}.")
        can_act = data.get("can_act", False)
        if not isinstance(can_act, bool):
            raise bad_request(f"can_act must be true or false, got {json.dumps(can_act)}.")
    try:
        link, raw_token = portal_link_create(
            api_key_id=request.api_key.pk, can_act=can_act, created_by="the partner API"
        )
    except PortalLinkError as error:
        raise ApiError(409, "conflict", str(error)) from None
    response = JsonResponse({
        "url": portal_link_url(raw_token),
        "can_act": link.can_act,
        "expires_at": timestamp(link.expires_at),
        "message": "A sign-in link to the partner portal: it works once, until expires_at. "
        "It is shown only now.",
    }, status=201)
    add_never_cache_headers(response)
    return response
