"""The partners' own endpoints: with a key that belongs to their webhooks, partners read
those webhooks' state and deliveries, and ask for a resync or a test event.

A key sees only its own webhooks: any other webhook answers 404, the same as one that does
not exist (it neither exists nor not for this key). No answer carries a signing secret.
"""

import json
import re
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
    time_value,
    timestamp,
)
from apikeys.selectors import api_key_webhooks
from deliveries.models import Delivery, DeliveryAttempt
from deliveries.selectors import (
    WebhookHealth,
    delivery_changes,
    webhook_batches_after,
    webhook_deliveries_page,
    webhook_delivery_get,
    webhook_last_accepted,
    webhook_position_of,
    webhook_positions,
    webhooks_health,
)
from deliveries.services import (
    DeliveryError,
    ScopeError,
    ScopeTooSoon,
    TooSoon,
    UnknownInstitutes,
    webhook_replay,
)
from deliveries.services.partner import (
    NotResendable,
    UrlChangeRefused,
    UrlNotAllowed,
    partner_delivery_resend,
    partner_pause,
    partner_resume,
    partner_resync,
    partner_scope_change,
    partner_secret_rotate,
    partner_test_send,
    partner_url_change,
)
from webhooks.models import SCOPE_OBJECT_KINDS, Webhook, WebhookAction
from webhooks.secrets import secret_fingerprint
from webhooks.services import Actor

STATES = tuple(Delivery.State.values)
# Message ids are ASCII letters, digits and "_" (deliveries.services.message_id_generate):
# any other text, a NUL above all (PostgreSQL refuses it in a query), names no delivery.
_MESSAGE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


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
        **lag_data(health, now),
        "changes_url": changes_url(webhook.pk),
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
        "response_bytes_replaced": attempt.response_bytes_replaced,
        "response_encoding": attempt.response_encoding or None,
    }


# --- Views -------------------------------------------------------------------------------


def key_actor(request: HttpRequest) -> Actor:
    """The request's key, as webhook actions record it for staff."""
    return Actor(channel=WebhookAction.Channel.API, label=str(request.api_key),
                 api_key_id=request.api_key.pk)


def _own_webhook(request: HttpRequest, webhook_id: int) -> Webhook:
    webhook = api_key_webhooks(api_key=request.api_key).filter(pk=webhook_id).first()
    if webhook is None:
        raise not_found(f"Webhook {webhook_id} does not exist.")
    return webhook


@api_view
def webhook_list(request: HttpRequest) -> JsonResponse:
    """The key's webhooks with their state and backlog (an empty list for a key that
    belongs to no webhook)."""
    page = positive_int_parameter(request, "page", 1)
    page_size = page_size_parameter(request)
    webhooks = api_key_webhooks(api_key=request.api_key)
    count = webhooks.count()
    last_page = max(1, -(-count // page_size))
    if page > last_page:
        raise not_found(f"Page {page} does not exist: there are {last_page} at page_size "
                        f"{page_size}.")
    now = timezone.now()
    results = []
    for webhook in webhooks[(page - 1) * page_size : page * page_size]:
        for health in webhooks_health(now=now, webhook_id=webhook.pk):
            results.append(webhook_data(health, now))

    def page_url(number: int) -> str:
        size = None if page_size == PAGE_SIZE_DEFAULT else page_size
        return link(f"{settings.API_BASE_URL}/webhooks", page=number, page_size=size)

    # A page like every other list's (count, next, previous), though a key rarely has more
    # webhooks than fit on one.
    return page_answer(
        count=count,
        next_url=page_url(page + 1) if page < last_page else None,
        previous_url=page_url(page - 1) if page > 1 else None,
        results=results,
    )


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
    delivery = None
    if _MESSAGE_ID.fullmatch(message_id):
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


def _too_many_requests(error: TooSoon) -> ApiError:
    return ApiError(
        429, "too_many_requests", str(error), headers={"Retry-After": str(error.retry_after)}
    )


@api_view(methods=("POST",))
def webhook_resync_view(request: HttpRequest, webhook_id: int) -> JsonResponse:
    """Queue the whole catalogue for the webhook; at most once per WEBHOOK_RESYNC_INTERVAL
    per webhook and per key."""
    webhook = _own_webhook(request, webhook_id)
    try:
        count = partner_resync(webhook_id=webhook.pk, actor=key_actor(request))
    except TooSoon as error:
        raise _too_many_requests(error) from None
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
    """Queue a test event (`{"changes": []}`, signed) for the webhook, as the admin does; at
    most once per WEBHOOK_TEST_INTERVAL per webhook and per key."""
    webhook = _own_webhook(request, webhook_id)
    try:
        delivery = partner_test_send(webhook_id=webhook.pk, actor=key_actor(request))
    except TooSoon as error:
        raise _too_many_requests(error) from None
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


# --- What was sent, in order; replay; lag (issue 22) ---------------------------------------

CHANGES_PAGE_DEFAULT = 10
CHANGES_PAGE_MAX = 100
_POSITION = re.compile(r"[0-9]{1,19}")


def changes_url(webhook_id: int, **query) -> str:
    return link(f"{webhook_url(webhook_id)}/changes", **query)


def lag_data(health: WebhookHealth, now: datetime) -> dict:
    """Everything not accepted yet: waiting entries and the open batch's."""
    lag = health.lag(now)
    return {
        "unaccepted_entries": health.unaccepted_entries,
        "oldest_unaccepted_at": _time(health.oldest_unaccepted_at),
        "lag_seconds": None if lag is None else round(lag.total_seconds(), 3),
    }


def _not_retained(webhook_id: int, after: str) -> ApiError:
    return ApiError(
        410, "gone",
        f"Position {after} is not retained for webhook {webhook_id}: accepted batches are "
        f"kept {settings.WEBHOOK_RETENTION_DAYS} days. Resync (POST "
        f"{webhook_url(webhook_id)}/resync), then read from the latest position "
        f"(GET {changes_url(webhook_id)}, `latest_position`).",
    )


def _after_parameter(request: HttpRequest, webhook_id: int) -> int:
    """`after`: 0 (or absent) for the oldest retained batch, a position, or a batch's
    message id (its `webhook-id`); 410 when it is no longer retained."""
    raw = request.GET.get("after")
    if raw is None or raw == "0":
        return 0
    if raw.startswith("msg_"):
        position = webhook_position_of(webhook_id=webhook_id, message_id=raw)
        if position is None:
            raise _not_retained(webhook_id, raw)
        return position
    if not _POSITION.fullmatch(raw) or int(raw) >= 2**63:
        raise bad_request(
            f"after must be a position (a whole number, 0 for the oldest retained batch) "
            f"or a batch's message id (msg_…), got {raw!r}."
        )
    position = int(raw)
    if webhook_position_of(webhook_id=webhook_id, position=position) is None:
        # Past the webhook's latest batch: a mistake. Otherwise it may be one of this
        # webhook's, pruned since (even all of them): gone.
        latest = webhook_positions(webhook_id=webhook_id).latest
        if latest is not None and position > latest:
            raise bad_request(
                f"after={position} is past the latest position of webhook {webhook_id} "
                f"({latest})."
            )
        raise _not_retained(webhook_id, raw)
    return position


@api_view
def webhook_changes(request: HttpRequest, webhook_id: int) -> JsonResponse:
    """The batches sent to the webhook after a position, in the order sent, with their
    entries: `after`, `page_size` (batches, ≤ 100)."""
    webhook = _own_webhook(request, webhook_id)
    page_size = min(
        positive_int_parameter(request, "page_size", CHANGES_PAGE_DEFAULT), CHANGES_PAGE_MAX
    )
    after = _after_parameter(request, webhook.pk)
    batches = webhook_batches_after(webhook_id=webhook.pk, after=after, limit=page_size + 1)
    more = len(batches) > page_size
    batches = batches[:page_size]
    position = batches[-1].pk if batches else after
    kept_size = None if page_size == CHANGES_PAGE_DEFAULT else page_size
    return JsonResponse(
        {
            "webhook": webhook.pk,
            "results": [
                {
                    "position": batch.pk,
                    "message_id": batch.message_id,
                    "state": batch.state,
                    "created_at": _time(batch.created_at),
                    "delivered_at": _time(batch.delivered_at),
                    "changes": delivery_changes(batch),
                }
                for batch in batches
            ],
            "position": position,
            "latest_position": webhook_positions(webhook_id=webhook.pk).latest or 0,
            "next": changes_url(webhook.pk, after=position, page_size=kept_size)
            if more else None,
        }
    )


def _since_argument(request: HttpRequest) -> datetime:
    """`since` from the query string or a JSON body ({"since": "…"})."""
    raw = request.GET.get("since")
    if raw is None and request.body:
        try:
            body = json.loads(request.body)
        except (ValueError, UnicodeDecodeError):
            raise bad_request(
                'The body must be JSON like {"since": "2026-11-29T19:49:52Z"}.'
            ) from None
        raw = body.get("since") if isinstance(body, dict) else None
    if raw is None:
        raise bad_request("since is required: an RFC 3339 time within the retention period.")
    if not isinstance(raw, str):
        raise bad_request(f"since must be an RFC 3339 date and time string, got {raw!r}.")
    since = time_value(raw, "since")
    now = timezone.now()
    retained_from = now - timedelta(days=settings.WEBHOOK_RETENTION_DAYS)
    if since > now:
        raise bad_request(f"since must not be in the future, got {raw!r}.")
    if since < retained_from:
        raise bad_request(
            f"since must be within the retention period ({settings.WEBHOOK_RETENTION_DAYS} "
            f"days, so at or after {timestamp(retained_from)}), got {raw!r}; for older "
            f"changes resync (POST …/resync)."
        )
    return since


@api_view(methods=("POST",))
def webhook_replay_view(request: HttpRequest, webhook_id: int) -> JsonResponse:
    """Queue again the entries of the webhook's batches made since `since`; shares the
    resync's rate limit."""
    webhook = _own_webhook(request, webhook_id)
    since = _since_argument(request)
    try:
        batches, entries = webhook_replay(
            webhook_id=webhook.pk, since=since,
            min_interval=timedelta(seconds=settings.WEBHOOK_RESYNC_INTERVAL),
            api_key_id=request.api_key.pk,
        )
    except TooSoon as error:
        raise _too_many_requests(error) from None
    except DeliveryError as error:
        raise not_found(f"Webhook {webhook_id} does not exist.") from error
    return JsonResponse(
        {
            "webhook": webhook.pk,
            "since": timestamp(since),
            "batches": batches,
            "entries": entries,
            "message": f"Queued again the {entries} entries of {batches} batches sent since "
            f"{timestamp(since)}: they go out after what already waits, coalesced with it.",
        },
        status=202,
    )


# --- Partner actions: what the portal's acting links do, for the partner's code ----------
# Each goes through deliveries.services.partner, which records it for staff.


def _action_answer(webhook: Webhook, message: str, status: int = 200, **extra) -> JsonResponse:
    return JsonResponse({"webhook": webhook.pk, **extra, "message": message}, status=status)


@api_view(methods=("POST",))
def delivery_retry_view(request: HttpRequest, webhook_id: int, message_id: str) -> JsonResponse:
    """Send a failed delivery again now instead of at its backoff time."""
    webhook = _own_webhook(request, webhook_id)
    try:
        message = partner_delivery_resend(
            webhook_id=webhook.pk, message_id=message_id, actor=key_actor(request)
        )
    except NotResendable as error:
        raise ApiError(409, "conflict", str(error)) from None
    except DeliveryError:
        raise not_found(f"Webhook {webhook_id} has no delivery {message_id}.") from None
    return _action_answer(webhook, message, status=202, message_id=message_id)


@api_view(methods=("POST",))
def webhook_pause_view(request: HttpRequest, webhook_id: int) -> JsonResponse:
    webhook = _own_webhook(request, webhook_id)
    message = partner_pause(webhook_id=webhook.pk, actor=key_actor(request))
    return _action_answer(webhook, message, state="paused")


@api_view(methods=("POST",))
def webhook_resume_view(request: HttpRequest, webhook_id: int) -> JsonResponse:
    webhook = _own_webhook(request, webhook_id)
    message = partner_resume(webhook_id=webhook.pk, actor=key_actor(request))
    return _action_answer(webhook, message, state="healthy" if not webhook.failing_since
                          else "failing")


@api_view(methods=("POST",))
def webhook_secret_rotate_view(request: HttpRequest, webhook_id: int) -> JsonResponse:
    """A new signing secret, in this answer only; the previous one keeps signing for the
    overlap the contract states."""
    webhook = _own_webhook(request, webhook_id)
    rotated = partner_secret_rotate(webhook_id=webhook.pk, actor=key_actor(request))
    response = _action_answer(
        webhook, rotated.message,
        secret=rotated.secret,
        fingerprint=secret_fingerprint(rotated.secret),
        previous_secret_expires_at=_time(rotated.webhook.previous_secret_expires_at),
    )
    # The one answer that carries a secret: no cache on the way may keep it.
    response["Cache-Control"] = "no-store, private"
    return response


@api_view(methods=("POST",))
def webhook_url_change_view(request: HttpRequest, webhook_id: int) -> JsonResponse:
    """`{"url": "https://…"}`: the new URL gets a signed test event now; only a 2xx answer
    makes it the webhook's URL."""
    webhook = _own_webhook(request, webhook_id)
    try:
        data = json.loads(request.body or b"null")
    except ValueError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("url"), str):
        raise bad_request('The body must be JSON with the new URL: {"url": "https://…"}.')
    try:
        message = partner_url_change(webhook_id=webhook.pk, url=data["url"],
                                     actor=key_actor(request))
    except UrlNotAllowed as error:
        raise bad_request(f"url: {error}") from None
    except UrlChangeRefused as error:
        raise ApiError(409, "conflict", str(error)) from None
    except TooSoon as error:
        raise _too_many_requests(error) from None
    return _action_answer(webhook, message, url=data["url"].strip())


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
        changed, message = partner_scope_change(
            webhook_id=webhook.pk, institute_ids=institutes, objects=objects,
            actor=key_actor(request),
        )
    except UnknownInstitutes as error:
        raise bad_request(
            "Unknown institute" + ("s: " if len(error.institute_ids) > 1 else ": ")
            + ", ".join(map(str, error.institute_ids)) + "."
        ) from None
    except ScopeTooSoon as error:
        raise _too_many_requests(error) from None
    except ScopeError as error:
        raise not_found(f"Webhook {webhook_id} does not exist.") from error
    webhook.refresh_from_db()
    return JsonResponse(
        {
            "webhook": webhook.pk,
            "scope": scope_data(webhook),
            "imported": changed.imported,
            "destroyed": changed.destroyed,
            "message": message,
        }
    )
