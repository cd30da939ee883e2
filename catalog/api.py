"""The Trainings API: read-only JSON about trainings and institutes, for partners.

Plain Django views on the shared API plumbing (apikeys.api): every answer, errors
included, is JSON; every request needs an API key (the `X-API-Key` header, or the
`api_key` query parameter). The `url` of an object is the one webhook changes point to
(changes.kinds: API_BASE_URL + /trainings/<id> or /institutes/<id>).
"""

import base64
import binascii
import re
from collections.abc import Callable
from datetime import datetime

from django.conf import settings
from django.http import HttpRequest, JsonResponse

from apikeys.api import (
    PAGE_SIZE_DEFAULT,
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
from catalog import digest
from catalog.models import Institute, Training
from catalog.selectors import (
    ListPage,
    PageOutOfRange,
    Position,
    institute_get,
    institute_trainings_page,
    institutes_page,
    training_get,
    trainings_page,
    webhook_objects,
)
from changes.kinds import INSTITUTE, TRAINING
from core.timestamps import timestamp_parse

# --- Representations ---------------------------------------------------------------------


def institute_trainings_url(institute_id: int, **query: int) -> str:
    return link(INSTITUTE.url(institute_id) + TRAINING.api_path, **query)


def training_data(training: Training) -> dict:
    return {
        "id": training.pk,
        "institute": training.institute_id,
        "reference": training.reference,
        "name": training.name,
        "description": training.description,
        # A string, so that no JSON parser turns 12.50 into a binary float.
        "price": None if training.price is None else f"{training.price:.2f}",
        "created_at": timestamp(training.created_at),
        "updated_at": timestamp(training.updated_at),
        "url": TRAINING.url(training.pk),
    }


def institute_data(institute: Institute) -> dict:
    return {
        "id": institute.pk,
        "name": institute.name,
        "created_at": timestamp(institute.created_at),
        "updated_at": timestamp(institute.updated_at),
        "url": INSTITUTE.url(institute.pk),
        "trainings_url": institute_trainings_url(institute.pk),
    }


# --- Views -------------------------------------------------------------------------------


@api_view
def training_detail(request: HttpRequest, training_id: int) -> JsonResponse:
    training = training_get(training_id=training_id)
    if training is None:
        raise not_found(f"Training {training_id} does not exist.")
    return JsonResponse(training_data(training))


@api_view
def institute_detail(request: HttpRequest, institute_id: int) -> JsonResponse:
    institute = institute_get(institute_id=institute_id)
    if institute is None:
        raise not_found(f"Institute {institute_id} does not exist.")
    return JsonResponse(institute_data(institute))


@api_view
def institute_trainings(request: HttpRequest, institute_id: int) -> JsonResponse:
    """The institute's trainings by id, a page at a time (`page`, `page_size` ≤ 1000)."""
    page = positive_int_parameter(request, "page", 1)
    page_size = page_size_parameter(request)
    try:
        result = institute_trainings_page(institute_id=institute_id, page=page, page_size=page_size)
    except PageOutOfRange as error:
        raise not_found(
            f"Page {error.page} does not exist: institute {institute_id} has "
            f"{error.last_page} page{'s' if error.last_page != 1 else ''} of trainings "
            f"at page_size {page_size}."
        ) from None
    if result is None:
        raise not_found(f"Institute {institute_id} does not exist.")

    def page_url(number: int) -> str:
        size = None if page_size == PAGE_SIZE_DEFAULT else page_size
        return institute_trainings_url(institute_id, page=number, page_size=size)

    return page_answer(
        count=result.count,
        next_url=page_url(page + 1) if result.has_next else None,
        previous_url=page_url(page - 1) if result.has_previous else None,
        results=[training_data(training) for training in result.trainings],
    )


# --- The lists: every institute, every training --------------------------------------------

# The largest id a BigAutoField holds: a position past it was never handed out.
MAX_OBJECT_ID = 2**63 - 1


def _cursor(obj) -> str:
    """An opaque page position: the object's (updated_at, id), base64url without padding."""
    raw = f"{timestamp(obj.updated_at)}|{obj.pk}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _position_parameter(request: HttpRequest, name: str) -> Position | None:
    raw = request.GET.get(name)
    if raw is None:
        return None
    try:
        decoded = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
        at, object_id = decoded.split("|")
        return Position(timestamp_parse(at), _object_id(object_id))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise bad_request(
            f"{name} must be a position this API handed out in a `next` or `previous` "
            f"link, got {raw!r}."
        ) from None


def _object_id(text: str) -> int:
    """An id as the API writes it: ASCII digits, small enough for every database."""
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_OBJECT_ID:
        raise ValueError("not an id")
    return int(text)


def updated_since_parameter(request: HttpRequest) -> datetime | None:
    """`updated_since`, an RFC 3339 time with its offset (`2026-11-29T19:49:52Z`)."""
    raw = request.GET.get("updated_since")
    if raw is None:
        return None
    return time_value(raw, "updated_since")


# Ids one list request may filter on: a scope's institutes fit in a few requests.
IDS_PARAMETER_MAX = 500


def ids_parameter(request: HttpRequest, name: str) -> list[int] | None:
    """The repeatable query parameter `name` (`?name=1&name=2`) as institute ids, or None
    when absent; ApiError 400 for a value that is not a whole number of 1 or more, or for
    more than IDS_PARAMETER_MAX of them."""
    raw_values = request.GET.getlist(name)
    if not raw_values:
        return None
    if len(raw_values) > IDS_PARAMETER_MAX:
        raise bad_request(f"{name} may be given at most {IDS_PARAMETER_MAX} times.")
    ids = []
    for raw in raw_values:
        if not raw.isascii() or not raw.isdigit() or not 0 < int(raw) < 2**63:
            raise bad_request(f"{name} must be an id, a whole number of 1 or more; got {raw!r}.")
        ids.append(int(raw))
    return ids


def _list(
    request: HttpRequest,
    select: Callable[..., ListPage],
    represent: Callable[[object], dict],
    path: str,
    id_filter: str,
) -> JsonResponse:
    page_size = page_size_parameter(request)
    updated_since = updated_since_parameter(request)
    institute_ids = ids_parameter(request, id_filter)
    after = _position_parameter(request, "after")
    before = _position_parameter(request, "before")
    if after is not None and before is not None:
        raise bad_request("Give after or before, not both.")
    result = select(updated_since=updated_since, after=after, before=before, page_size=page_size,
                    institute_ids=institute_ids)
    # Links keep the client's filters and size as it sent them.
    kept = {name: request.GET.get(name) for name in ("updated_since", "page_size")}
    kept[id_filter] = institute_ids
    url = f"{settings.API_BASE_URL}{path}"
    objects = result.objects
    next_url = previous_url = None
    if objects:
        if result.has_next:
            next_url = link(url, **kept, after=_cursor(objects[-1]))
        if result.has_previous:
            previous_url = link(url, **kept, before=_cursor(objects[0]))
    elif result.has_next:
        # Nothing lies before the position asked for: what follows is the first page.
        next_url = link(url, **kept)
    return page_answer(
        count=result.count, next_url=next_url, previous_url=previous_url,
        results=[represent(obj) for obj in objects],
    )


@api_view
def institute_list(request: HttpRequest) -> JsonResponse:
    """Every institute (or those `id` names, repeatable), oldest change first
    (`updated_at`, then id), a page at a time."""
    return _list(request, institutes_page, institute_data, INSTITUTE.api_path, "id")


@api_view
def training_list(request: HttpRequest) -> JsonResponse:
    """Every training (or those of the institutes `institute` names, repeatable), oldest
    change first (`updated_at`, then id), a page at a time."""
    return _list(request, trainings_page, training_data, TRAINING.api_path, "institute")



# --- The digest of what a webhook's partner should hold ------------------------------------
# At /webhooks/<id>/digest beside the partners' webhook endpoints (deliveries.api), but
# here because it reads the catalogue, which the deliveries app never imports.

_ID_PARAMETERS = ("from_id", "to_id")
_ID_DIGITS = re.compile(r"[0-9]{1,19}")


def _id_parameter(request: HttpRequest, name: str) -> int | None:
    raw = request.GET.get(name)
    if raw is None:
        return None
    if not _ID_DIGITS.fullmatch(raw) or int(raw) > digest.ID_MAX:
        raise bad_request(f"{name} must be a whole number from 0 to {digest.ID_MAX}, got {raw!r}.")
    return int(raw)


def _digest_link(webhook_id: int, kind: str, from_id: int, to_id: int) -> str:
    return link(
        f"{settings.API_BASE_URL}/webhooks/{webhook_id}/digest",
        kind=kind, from_id=from_id, to_id=to_id,
    )


@api_view
def webhook_digest(request: HttpRequest, webhook_id: int) -> JsonResponse:
    """Count and digest of each kind the webhook sends; with `kind`, `from_id` and `to_id`,
    of that id range with its sub-ranges (or, for a small range, its objects)."""
    webhook = api_key_webhooks(api_key=request.api_key).filter(pk=webhook_id).first()
    if webhook is None:
        raise not_found(f"Webhook {webhook_id} does not exist.")
    sets = webhook_objects(webhook)
    kind = choice_parameter(request, "kind", tuple(sets))
    from_id, to_id = (_id_parameter(request, name) for name in _ID_PARAMETERS)
    if kind is None:
        given = [name for name in _ID_PARAMETERS if request.GET.get(name) is not None]
        if given:
            raise bad_request(f"kind is required with {' and '.join(given)}.")
        kinds = {}
        for name, objects in sets.items():
            whole = digest.kind_digest(queryset=objects)
            kinds[name] = {
                "count": whole.count,
                "digest": whole.digest,
                "min_id": whole.min_id,
                "max_id": whole.max_id,
                "range_url": None if whole.max_id is None else _digest_link(
                    webhook_id, name, whole.min_id, whole.max_id
                ),
            }
        return JsonResponse({"webhook": webhook_id, "rule": digest.DIGEST_RULE, "kinds": kinds})
    for name, value in (("from_id", from_id), ("to_id", to_id)):
        if value is None:
            raise bad_request(f"{name} is required with kind.")
    if from_id > to_id:
        raise bad_request(f"from_id must be at most to_id, got from_id={from_id} to_id={to_id}.")
    objects = sets[kind]
    parts = digest.range_parts(queryset=objects, from_id=from_id, to_id=to_id)
    total = digest.combine(parts)
    answer = {
        "webhook": webhook_id,
        "rule": digest.DIGEST_RULE,
        "kind": kind,
        "from_id": from_id,
        "to_id": to_id,
        "count": total.count,
        "digest": total.digest,
    }
    if total.count <= digest.RANGE_OBJECTS_MAX:
        listed = digest.range_objects(queryset=objects, from_id=from_id, to_id=to_id)
        # Count and digest of the very objects listed, should one change in between.
        answer["count"] = len(listed)
        answer["digest"] = digest.digest_text(digest.objects_hash(listed))
        answer["objects"] = [
            {"id": object_id, "updated_at": updated_at} for object_id, updated_at in listed
        ]
    else:
        answer["ranges"] = [
            {
                "from_id": part.from_id,
                "to_id": part.to_id,
                "count": part.count,
                "digest": part.digest,
                "url": _digest_link(webhook_id, kind, part.from_id, part.to_id),
            }
            for part in parts
        ]
    return JsonResponse(answer)
