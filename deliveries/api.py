"""The partners' own endpoints: with a key that belongs to their webhooks, partners read
those webhooks' state and deliveries, and ask for a resync or a test event.

A key sees only its own webhooks: any other webhook answers 404, the same as one that does
not exist (it neither exists nor not for this key). No answer carries a signing secret.
"""

import json
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from django.utils import timezone

from apikeys.api import (
    PAGE_SIZE_DEFAULT,
    ApiError,
    api_view,
    bad_request,
    choice_parameter,
    link,
    not_found,
    page_answer,
    page_size_parameter,
    positive_int_parameter,
    timestamp,
)
from apikeys.selectors import api_key_webhooks
from deliveries.models import Delivery, DeliveryAttempt
from deliveries.selectors import (
    WebhookHealth,
    webhook_deliveries_page,
    webhook_delivery_get,
    webhook_last_accepted,
    webhooks_health,
)
from deliveries.services import (
    DeliveryError,
    ResyncTooSoon,
    ScopeError,
    ScopeTooSoon,
    UnknownInstitutes,
    delivery_test_send,
    webhook_resync,
    webhook_scope_change,
)
from webhooks.models import SCOPE_OBJECT_KINDS, Webhook

STATES = tuple(Delivery.State.values)


def _time(value: datetime | None) -> str | None:
    return None if value is None else timestamp(value)


def webhook_url(webhook_id: int) -> str:
    return f"{settings.API_BASE_URL}/webhooks/{webhook_id}"


def deliveries_url(webhook_id: int, **query) -> str:
    return link(f"{webhook_url(webhook_id)}/deliveries", **query)


def delivery_url(delivery: Delivery) -> str:
    return f"{deliveries_url(delivery.webhook_id)}/{delivery.message_id}"


# --- Representations ---------------------------------------------------------------------


def webhook_data(health: WebhookHealth, now: datetime) -> dict:
    webhook = health.webhook
    age = health.oldest_pending_age(now)
    last = webhook_last_accepted(webhook_id=webhook.pk)
    return {
        "id": webhook.pk,
        "name": webhook.name,
        "url": webhook.url,
        "state": health.state,
        "failing_since": _time(webhook.failing_since),
        "paused_reason": webhook.paused_reason or None,
        "pending_entries": health.pending_entries,
        "oldest_pending_at": _time(health.oldest_pending_at),
        "oldest_pending_age_seconds": None if age is None else round(age.total_seconds(), 3),
        "last_accepted_at": _time(webhook.last_success_at),
        "last_accepted_delivery": None if last is None else {
            "message_id": last.message_id,
            "delivered_at": _time(last.delivered_at),
            "url": delivery_url(last),
        },
        "last_resync_at": _time(webhook.last_resync_at),
        "scope": scope_data(webhook),
        "deliveries_url": deliveries_url(webhook.pk),
    }


def scope_data(webhook: Webhook) -> dict:
    """The part of the catalogue the webhook receives: its institutes (null: the whole
    catalogue) and the kinds of object."""
    institutes = webhook.scope_institutes
    return {
        "institutes": None if institutes is None else sorted(institutes),
        "objects": list(webhook.scope_object_kinds),
    }


def delivery_data(delivery: Delivery) -> dict:
    return {
        "message_id": delivery.message_id,
        "state": delivery.state,
        "is_test": delivery.is_test,
        "entry_count": delivery.entry_count,
        "attempt_count": delivery.attempt_count,
        "created_at": _time(delivery.created_at),
        "last_attempt_at": _time(delivery.last_attempt_at),
        "next_attempt_at": _time(delivery.next_attempt_at),
        "delivered_at": _time(delivery.delivered_at),
        "last_status_code": delivery.last_status_code,
        "last_error_kind": delivery.last_error_kind or None,
        "url": delivery_url(delivery),
    }


def attempt_data(attempt: DeliveryAttempt) -> dict:
    return {
        "number": attempt.number,
        "started_at": _time(attempt.started_at),
        "duration_seconds": attempt.duration,
        "accepted": attempt.accepted,
        "status_code": attempt.status_code,
        "error_kind": attempt.error_kind or None,
        "error_message": attempt.error_message or None,
        "response_body": attempt.response_body,
    }


# --- Views -------------------------------------------------------------------------------


def _own_webhook(request: HttpRequest, webhook_id: int) -> Webhook:
    webhook = api_key_webhooks(api_key=request.api_key).filter(pk=webhook_id).first()
    if webhook is None:
        raise not_found(f"Webhook {webhook_id} does not exist.")
    return webhook


@api_view
def webhook_list(request: HttpRequest) -> JsonResponse:
    """The key's webhooks with their state and backlog (an empty list for a key that
    belongs to no webhook)."""
    now = timezone.now()
    results = []
    for webhook in api_key_webhooks(api_key=request.api_key):
        for health in webhooks_health(now=now, webhook_id=webhook.pk):
            results.append(webhook_data(health, now))
    return JsonResponse({"results": results})


@api_view
def webhook_detail(request: HttpRequest, webhook_id: int) -> JsonResponse:
    webhook = _own_webhook(request, webhook_id)
    now = timezone.now()
    health = webhooks_health(now=now, webhook_id=webhook.pk)
    if not health:
        raise not_found(f"Webhook {webhook_id} does not exist.")
    return JsonResponse(webhook_data(health[0], now))


@api_view
def delivery_list(request: HttpRequest, webhook_id: int) -> JsonResponse:
    """The webhook's deliveries, newest first, a page at a time; `state` filters."""
    webhook = _own_webhook(request, webhook_id)
    state = choice_parameter(request, "state", STATES)
    page = positive_int_parameter(request, "page", 1)
    page_size = page_size_parameter(request)
    result = webhook_deliveries_page(
        webhook_id=webhook.pk, state=state, page=page, page_size=page_size
    )
    if page > result.last_page:
        raise not_found(
            f"Page {page} does not exist: there {'is' if result.last_page == 1 else 'are'} "
            f"{result.last_page} page{'s' if result.last_page != 1 else ''} at page_size "
            f"{page_size}."
        )

    def page_url(number: int) -> str:
        size = None if page_size == PAGE_SIZE_DEFAULT else page_size
        return deliveries_url(webhook.pk, state=state, page=number, page_size=size)

    return page_answer(
        count=result.count,
        next_url=page_url(page + 1) if page < result.last_page else None,
        previous_url=page_url(page - 1) if page > 1 else None,
        results=[delivery_data(delivery) for delivery in result.deliveries],
    )


@api_view
def delivery_detail(request: HttpRequest, webhook_id: int, message_id: str) -> JsonResponse:
    """One delivery: the body that was sent and every attempt with the partner's answer."""
    webhook = _own_webhook(request, webhook_id)
    delivery = webhook_delivery_get(webhook_id=webhook.pk, message_id=message_id)
    if delivery is None:
        raise not_found(f"Webhook {webhook_id} has no delivery {message_id}.")
    return JsonResponse(
        {
            **delivery_data(delivery),
            # The body as sent (compact JSON) is what was signed; here it is parsed.
            "payload": json.loads(delivery.payload),
            "attempts": [attempt_data(attempt) for attempt in delivery.attempts.all()],
        }
    )


@api_view(methods=("POST",))
def webhook_resync_view(request: HttpRequest, webhook_id: int) -> JsonResponse:
    """Queue the whole catalogue for the webhook; at most once per WEBHOOK_RESYNC_INTERVAL."""
    webhook = _own_webhook(request, webhook_id)
    try:
        count = webhook_resync(
            webhook_id=webhook.pk,
            min_interval=timedelta(seconds=settings.WEBHOOK_RESYNC_INTERVAL),
        )
    except ResyncTooSoon as error:
        raise ApiError(
            429, "too_many_requests", str(error), headers={"Retry-After": str(error.retry_after)}
        ) from None
    except DeliveryError as error:
        raise not_found(f"Webhook {webhook_id} does not exist.") from error
    return JsonResponse(
        {
            "webhook": webhook.pk,
            "institutes": count,
            "message": f"Queued an import of each of the {count} institutes for webhook "
            f"{webhook.pk}: they go out after what already waits, coalesced with it.",
        },
        status=202,
    )


@api_view(methods=("POST",))
def webhook_test_view(request: HttpRequest, webhook_id: int) -> JsonResponse:
    """Queue a test event (`{"changes": []}`, signed) for the webhook, as the admin does."""
    webhook = _own_webhook(request, webhook_id)
    try:
        delivery = delivery_test_send(webhook_id=webhook.pk)
    except DeliveryError as error:
        raise ApiError(409, "conflict", f"{error}.") from None
    return JsonResponse(
        {
            "message_id": delivery.message_id,
            "url": delivery_url(delivery),
            "message": "Test event queued: it goes out at the dispatcher's next tick.",
        },
        status=202,
    )


# The objects a partner may ask for, and the scope each set of them is.
_OBJECTS_SCOPE = {
    frozenset(kinds): objects for objects, kinds in SCOPE_OBJECT_KINDS.items()
}
_SCOPE_INSTITUTES_MAX = 10_000
_ID_MAX = 2**63 - 1


def _scope_parse(request: HttpRequest) -> tuple[list[int] | None, str]:
    """The scope a PUT asks for, or ApiError 400 saying what is wrong with the body."""
    try:
        body = json.loads(request.body or b"null")
    except (RequestDataTooBig, ValueError):
        raise bad_request(
            'The body must be a JSON object such as {"institutes": [1, 2], '
            '"objects": ["institute", "training"]}.'
        ) from None
    if not isinstance(body, dict) or set(body) != {"institutes", "objects"}:
        raise bad_request(
            'The body must be a JSON object with exactly the members "institutes" (a list '
            'of institute ids, or null for the whole catalogue) and "objects".'
        )
    institutes = body["institutes"]
    if institutes is not None:
        if (
            not isinstance(institutes, list)
            or not institutes
            or len(institutes) > _SCOPE_INSTITUTES_MAX
            or not all(type(value) is int and 0 < value <= _ID_MAX for value in institutes)
        ):
            raise bad_request(
                f"institutes must be null (the whole catalogue) or a list of 1 to "
                f"{_SCOPE_INSTITUTES_MAX} institute ids (whole numbers, 1 or more)."
            )
        institutes = sorted(set(institutes))
    objects = body["objects"]
    kinds = frozenset(objects) if isinstance(objects, list) and all(
        isinstance(kind, str) for kind in objects
    ) else None
    if kinds is None or len(kinds) != len(objects) or kinds not in _OBJECTS_SCOPE:
        raise bad_request(
            'objects must be a list of "institute", "training" or both, each once.'
        )
    return institutes, _OBJECTS_SCOPE[kinds]


@api_view(methods=("PUT",))
def webhook_scope_view(request: HttpRequest, webhook_id: int) -> JsonResponse:
    """Replace the webhook's scope. What entered is imported and what left destroyed,
    through the webhook's own ordered channel; a change that imports is limited as a
    resync is (WEBHOOK_RESYNC_INTERVAL)."""
    webhook = _own_webhook(request, webhook_id)
    institutes, objects = _scope_parse(request)
    try:
        changed = webhook_scope_change(
            webhook_id=webhook.pk, institute_ids=institutes, objects=objects,
            min_interval=timedelta(seconds=settings.WEBHOOK_RESYNC_INTERVAL),
        )
    except UnknownInstitutes as error:
        raise bad_request(
            "Unknown institute" + ("s: " if len(error.institute_ids) > 1 else ": ")
            + ", ".join(map(str, error.institute_ids)) + "."
        ) from None
    except ScopeTooSoon as error:
        raise ApiError(
            429, "too_many_requests", str(error), headers={"Retry-After": str(error.retry_after)}
        ) from None
    except ScopeError as error:
        raise not_found(f"Webhook {webhook_id} does not exist.") from error
    webhook.refresh_from_db()
    return JsonResponse(
        {
            "webhook": webhook.pk,
            "scope": scope_data(webhook),
            "imported": changed.imported,
            "destroyed": changed.destroyed,
            "message": f"Scope set: queued an import of {changed.imported} and a destroy of "
            f"{changed.destroyed} institutes for webhook {webhook.pk}, after what already "
            f"waits, coalesced with it.",
        }
    )
