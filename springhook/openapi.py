"""The OpenAPI 3.1 description of the Trainings API and of the webhook Springhook sends.

Built from the code's own constants (page sizes, the key header, the User-Agent, the retry
schedule), served at /openapi.json. Tests validate the document and check real API
answers and real deliveries against its schemas, so it cannot drift from the code.
"""

import re

from django.conf import settings

import core
from apikeys.api import API_KEY_HEADER, API_KEY_PARAMETER, PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX
from catalog.api import IDS_PARAMETER_MAX
from catalog.digest import RANGE_OBJECTS_MAX, RANGE_PARTS
from changes.kinds import INSTITUTE, OBJECT_KINDS, TRAINING
from deliveries.models import Delivery, DeliveryAttempt
from deliveries.services import RETRY_AFTER_CAP, USER_AGENT

SCHEMAS = "#/components/schemas/"
DELIVERY_STATES = tuple(Delivery.State.values)
ERROR_KINDS = tuple(kind for kind in DeliveryAttempt.ErrorKind.values if kind)
# The `url` of a change entry: one object of a kind, never a format extension or a key.
OBJECT_URL_PATTERN = (
    "/(" + "|".join(re.escape(kind.api_path.lstrip("/")) for kind in OBJECT_KINDS.values())
    + r")/[0-9]+$"
)
_EXAMPLE_TIME = "2026-11-29T19:49:52.123456Z"


def _ref(name: str) -> dict:
    return {"$ref": SCHEMAS + name}


def _json(schema: dict, **extra) -> dict:
    return {"content": {"application/json": {"schema": schema, **extra}}}


def _error(description: str, example_error: str, example_message: str) -> dict:
    return {
        "description": description,
        **_json(_ref("Error"), example={"error": example_error, "message": example_message}),
    }


def _schemas(base: str) -> dict:
    timestamp = {"type": "string", "format": "date-time", "description": "UTC, RFC 3339"}
    object_kind = {"type": "string", "enum": list(OBJECT_KINDS)}
    object_paths = " or ".join(f"{kind.api_path}/<id>" for kind in OBJECT_KINDS.values())
    change_url = {
        "type": "string",
        "format": "uri",
        "pattern": OBJECT_URL_PATTERN,
        "description": f"API_BASE_URL + {object_paths}; the partner "
        f"adds its own API key (the {API_KEY_HEADER} header) to fetch it.",
    }
    return {
        "Training": {
            "type": "object",
            "additionalProperties": False,
            "required": ["id", "institute", "reference", "name", "description", "price",
                         "created_at", "updated_at", "url"],
            "properties": {
                "id": {"type": "integer"},
                "institute": {"type": "integer", "description": "the institute's id"},
                "reference": {"type": "string", "description": "the institute's own id"},
                "name": {"type": "string"},
                "description": {"type": "string"},
                "price": {
                    "type": ["string", "null"],
                    "pattern": r"^[0-9]+\.[0-9]{2}$",
                    "description": "a decimal string like \"12.50\", never a binary float",
                },
                "created_at": timestamp,
                "updated_at": timestamp,
                "url": {"type": "string", "format": "uri"},
            },
            "example": {
                "id": 3, "institute": 1, "reference": "NW-LEAD", "name": "Leading small teams",
                "description": "", "price": "120.00", "created_at": _EXAMPLE_TIME,
                "updated_at": _EXAMPLE_TIME, "url": base + TRAINING.path(3),
            },
        },
        "Institute": {
            "type": "object",
            "additionalProperties": False,
            "required": ["id", "name", "created_at", "updated_at", "url", "trainings_url"],
            "properties": {
                "id": {"type": "integer"},
                "name": {"type": "string"},
                "created_at": timestamp,
                "updated_at": timestamp,
                "url": {"type": "string", "format": "uri"},
                "trainings_url": {"type": "string", "format": "uri"},
            },
            "example": {
                "id": 1, "name": "Northwind Academy", "created_at": _EXAMPLE_TIME,
                "updated_at": _EXAMPLE_TIME, "url": base + INSTITUTE.path(1),
                "trainings_url": base + INSTITUTE.path(1) + TRAINING.api_path,
            },
        },
        "TrainingPage": {
            "type": "object",
            "additionalProperties": False,
            "required": ["count", "next", "previous", "results"],
            "properties": {
                "count": {"type": "integer", "minimum": 0,
                          "description": "the institute's trainings on all pages"},
                "next": {"type": ["string", "null"], "format": "uri"},
                "previous": {"type": ["string", "null"], "format": "uri"},
                "results": {"type": "array", "items": _ref("Training"),
                            "description": "ordered by id"},
            },
        },
        "InstituteList": _list_page("Institute", "institutes"),
        "TrainingList": _list_page("Training", "trainings"),
        **_partner_schemas(base, timestamp),
        **_mirror_schemas(timestamp),
        **_partner_action_schemas(timestamp),
        "Error": {
            "type": "object",
            "additionalProperties": False,
            "required": ["error", "message"],
            "properties": {
                "error": {"type": "string", "description": "a stable code, e.g. not_found"},
                "message": {"type": "string", "description": "for people"},
            },
        },
        "WebhookPayload": {
            "type": "object",
            "additionalProperties": False,
            "required": ["changes"],
            "properties": {
                "changes": {
                    "type": "array",
                    "items": _ref("Change"),
                    "description": "One entry per object, ordered by its latest change. "
                    "Empty only in a test event an operator sent from the admin: answer it "
                    "like any batch.",
                },
            },
        },
        "Change": {
            "oneOf": [_ref("UpdateChange"), _ref("ImportChange"), _ref("DestroyChange")],
        },
        "UpdateChange": {
            "type": "object",
            "description": "The object was added or changed: fetch `url` and store it. A 404 "
            "there means it was removed since (its destroy follows).",
            "additionalProperties": False,
            "required": ["action", "object", "id", "url"],
            "properties": {
                "action": {"const": "update"},
                "object": object_kind,
                "id": {"type": "integer"},
                "url": change_url,
            },
        },
        "ImportChange": {
            "type": "object",
            "description": "An import replaced all trainings of this institute: fetch the "
            "institute and all pages of its `trainings_url`, and drop the trainings no longer "
            "listed. Also carries the updates of its trainings made meanwhile.",
            "additionalProperties": False,
            "required": ["action", "object", "id", "url"],
            "properties": {
                "action": {"const": "import"},
                "object": {"const": INSTITUTE.name},
                "id": {"type": "integer"},
                "url": change_url,
            },
        },
        "DestroyChange": {
            "type": "object",
            "description": "The object was removed: delete it (an institute takes its "
            "trainings along). There is no `url`.",
            "additionalProperties": False,
            "required": ["action", "object", "id"],
            "properties": {
                "action": {"const": "destroy"},
                "object": object_kind,
                "id": {"type": "integer"},
            },
        },
    }


def _list_page(item: str, what: str) -> dict:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["count", "next", "previous", "results"],
        "properties": {
            "count": {"type": "integer", "minimum": 0,
                      "description": f"the {what} on all pages (since `updated_since`)"},
            "next": {"type": ["string", "null"], "format": "uri",
                     "description": "the following page; null on the last"},
            "previous": {"type": ["string", "null"], "format": "uri"},
            "results": {"type": "array", "items": _ref(item),
                        "description": "ordered by `updated_at`, then `id`"},
        },
    }


def _partner_schemas(base: str, timestamp: dict) -> dict:
    optional_time = {**timestamp, "type": ["string", "null"]}
    delivery_properties = {
        "message_id": {"type": "string", "description": "the `webhook-id` header it was sent "
                       "with, the same on every attempt"},
        "state": {"type": "string", "enum": list(DELIVERY_STATES),
                  "description": "pending (not tried yet), failing (retried at "
                  "`next_attempt_at`) or delivered (accepted)"},
        "is_test": {"type": "boolean", "description": "a test event (`{\"changes\": []}`)"},
        "entry_count": {"type": "integer", "minimum": 0},
        "attempt_count": {"type": "integer", "minimum": 0},
        "created_at": timestamp,
        "last_attempt_at": optional_time,
        "next_attempt_at": optional_time,
        "delivered_at": optional_time,
        "last_status_code": {"type": ["integer", "null"]},
        "last_error_kind": {"type": ["string", "null"], "enum": [*ERROR_KINDS, None]},
        "url": {"type": "string", "format": "uri", "description": "this delivery here"},
    }
    return {
        "Webhook": {
            "type": "object",
            "description": "One of the partner's webhooks as Springhook sees it. Never its "
            "signing secret: that comes from staff.",
            "additionalProperties": False,
            "required": ["id", "name", "url", "state", "failing_since", "paused_reason",
                         "pending_entries", "oldest_pending_at", "oldest_pending_age_seconds",
                         "last_accepted_at", "last_accepted_delivery", "last_resync_at",
                         "scope", "deliveries_url", "unaccepted_entries",
                         "oldest_unaccepted_at", "lag_seconds", "changes_url"],
            "properties": {
                "id": {"type": "integer"},
                "name": {"type": "string"},
                "url": {"type": "string", "description": "where batches are POSTed"},
                "state": {"type": "string", "enum": ["healthy", "failing", "paused"]},
                "failing_since": {**optional_time, "description": "start of the current run "
                                  "of failed attempts"},
                "paused_reason": {"type": ["string", "null"], "description": "why it is "
                                  "paused: `Paused by staff.`, `The partner answered 410 "
                                  "Gone.`; never a person's name"},
                "pending_entries": {"type": "integer", "minimum": 0,
                                    "description": "coalesced changes waiting to be sent"},
                "oldest_pending_at": optional_time,
                "oldest_pending_age_seconds": {"type": ["number", "null"], "minimum": 0},
                "last_accepted_at": {**optional_time,
                                     "description": "when a delivery was last accepted"},
                "last_accepted_delivery": {
                    "type": ["object", "null"],
                    "additionalProperties": False,
                    "required": ["message_id", "delivered_at", "url"],
                    "properties": {
                        "message_id": {"type": "string"},
                        "delivered_at": timestamp,
                        "url": {"type": "string", "format": "uri"},
                    },
                },
                "last_resync_at": optional_time,
                "scope": _ref("Scope"),
                "deliveries_url": {"type": "string", "format": "uri"},
                "unaccepted_entries": {"type": "integer", "minimum": 0,
                                       "description": "entries not accepted yet: the waiting "
                                       "ones and those of the batch being sent"},
                "oldest_unaccepted_at": {**optional_time, "description": "when the oldest "
                                         "entry not accepted yet was changed (for entries in "
                                         "a batch being sent: when the batch was made)"},
                "lag_seconds": {"type": ["number", "null"], "minimum": 0,
                                "description": "its age: how far behind you are; null when "
                                "everything was accepted"},
                "changes_url": {"type": "string", "format": "uri",
                                "description": "what was sent to you, in order"},
            },
        },
        "Scope": {
            "type": "object",
            "description": "The part of the catalogue the webhook receives, whose mirror "
            "Springhook keeps exact: the institutes (each with its trainings) and the kinds "
            "of object. An institute's `import` and `destroy` reach both kinds.",
            "additionalProperties": False,
            "required": ["institutes", "objects"],
            "properties": {
                "institutes": {
                    "type": ["array", "null"], "minItems": 1, "maxItems": 10000,
                    "uniqueItems": True, "items": {"type": "integer", "minimum": 1},
                    "description": "institute ids; null: the whole catalogue",
                },
                "objects": {
                    "type": "array", "minItems": 1, "uniqueItems": True,
                    "items": {"type": "string", "enum": ["institute", "training"]},
                },
            },
        },
        "ScopeSet": {
            "type": "object",
            "additionalProperties": False,
            "required": ["webhook", "scope", "imported", "destroyed", "message"],
            "properties": {
                "webhook": {"type": "integer"},
                "scope": _ref("Scope"),
                "imported": {"type": "integer", "minimum": 0,
                             "description": "imports queued: the institutes that entered "
                             "(all of the scope's when `objects` changed)"},
                "destroyed": {"type": "integer", "minimum": 0,
                              "description": "destroys queued: the institutes that left"},
                "message": {"type": "string"},
            },
        },
        "WebhookList": {
            "type": "object",
            "additionalProperties": False,
            "required": ["count", "next", "previous", "results"],
            "properties": {
                "count": {"type": "integer", "minimum": 0},
                "next": {"type": ["string", "null"], "format": "uri"},
                "previous": {"type": ["string", "null"], "format": "uri"},
                "results": {"type": "array", "items": _ref("Webhook"),
                            "description": "by name; empty for a key that belongs to no "
                            "webhook"},
            },
        },
        "Delivery": {
            "type": "object",
            "additionalProperties": False,
            "required": list(delivery_properties),
            "properties": delivery_properties,
        },
        "DeliveryPage": {
            "type": "object",
            "additionalProperties": False,
            "required": ["count", "next", "previous", "results"],
            "properties": {
                "count": {"type": "integer", "minimum": 0},
                "next": {"type": ["string", "null"], "format": "uri"},
                "previous": {"type": ["string", "null"], "format": "uri"},
                "results": {"type": "array", "items": _ref("Delivery"),
                            "description": "newest first"},
            },
        },
        "Attempt": {
            "type": "object",
            "additionalProperties": False,
            "required": ["number", "started_at", "duration_seconds", "accepted", "status_code",
                         "error_kind", "error_message", "response_body",
                         "response_bytes_replaced", "response_encoding"],
            "properties": {
                "number": {"type": "integer", "minimum": 1},
                "started_at": timestamp,
                "duration_seconds": {"type": ["number", "null"], "minimum": 0},
                "accepted": {"type": "boolean"},
                "status_code": {"type": ["integer", "null"],
                                "description": "your answer's status; null if none came"},
                "error_kind": {"type": ["string", "null"], "enum": [*ERROR_KINDS, None]},
                "error_message": {"type": ["string", "null"]},
                "response_body": {"type": "string",
                                  "description": "the start (2 KiB) of your answer's body, "
                                  "as text"},
                "response_bytes_replaced": {
                    "type": "boolean",
                    "description": "NUL bytes or invalid UTF-8 in that start were replaced "
                    "with U+FFFD"},
                "response_encoding": {
                    "type": ["string", "null"],
                    "description": "your answer's Content-Encoding if it came compressed "
                    "although the request asked for `identity`; its body is not kept"},
            },
        },
        "DeliveryDetail": {
            "type": "object",
            "additionalProperties": False,
            "required": [*delivery_properties, "payload", "attempts"],
            "properties": {
                **delivery_properties,
                "payload": {**_ref("WebhookPayload"),
                            "description": "the body that was sent and signed (parsed)"},
                "attempts": {"type": "array", "items": _ref("Attempt"),
                             "description": "every attempt, first to last"},
            },
        },
        "ResyncQueued": {
            "type": "object",
            "additionalProperties": False,
            "required": ["webhook", "institutes", "message"],
            "properties": {
                "webhook": {"type": "integer"},
                "institutes": {"type": "integer", "minimum": 0,
                               "description": "imports queued, one per institute"},
                "message": {"type": "string"},
            },
        },
        "TestEventQueued": {
            "type": "object",
            "additionalProperties": False,
            "required": ["message_id", "url", "message"],
            "properties": {
                "message_id": {"type": "string"},
                "url": {"type": "string", "format": "uri",
                        "description": "the test delivery under /webhooks/<id>/deliveries"},
                "message": {"type": "string"},
            },
        },
    }


def _id_parameter(name: str, what: str) -> dict:
    return {"name": name, "in": "path", "required": True, "description": f"the {what}'s id",
            "schema": {"type": "integer", "minimum": 0}}


_UNAUTHORIZED = _error(
    "No API key, or one that is unknown or revoked (with `WWW-Authenticate: ApiKey`).",
    "unauthorized", "The API key is not valid: it is unknown or was revoked.",
)


def _operation(method: str, summary: str, description: str, parameters: list[dict],
               success: tuple[str, dict], **errors) -> dict:
    """One operation with the errors every API endpoint can answer: 401, 405; `errors`
    adds or replaces (404 by default: the object does not exist)."""
    verb = "GET" if method == "get" else method.upper()
    other = "POST" if method == "get" else "GET"
    responses = {
        success[0]: success[1],
        "401": _UNAUTHORIZED,
        "404": _error("The object does not exist (it was removed, or never existed).",
                      "not_found", "Training 5 does not exist."),
        "405": _error(f"A method other than {verb}{' or HEAD' if verb == 'GET' else ''} "
                      "(`Allow` names the one to use).",
                      "method_not_allowed", f"{other} is not allowed here: use {verb}."),
        **errors,
    }
    responses = {status: answer for status, answer in responses.items() if answer is not None}
    return {method: {"summary": summary, "description": description, "parameters": parameters,
                     "responses": responses}}


def _get(summary: str, description: str, parameters: list[dict], ok: dict, **errors) -> dict:
    return _operation("get", summary, description, parameters, ("200", ok), **errors)


def _paths() -> dict:
    training = _get(
        "A training",
        "The training as it is now: what an `update` entry's `url` points to.",
        [_id_parameter("training_id", "training")],
        {"description": "The training.", **_json(_ref("Training"))},
    )
    institute = _get(
        "An institute",
        "The institute as it is now: what `update` and `import` entries point to.",
        [_id_parameter("institute_id", "institute")],
        {"description": "The institute.", **_json(_ref("Institute"))},
    )
    trainings = _get(
        "An institute's trainings",
        "The institute's trainings by id, a page at a time; follow `next` until it is "
        "null. A page past the end is 404.",
        [
            _id_parameter("institute_id", "institute"),
            {"name": "page", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "default": 1}},
            {"name": "page_size", "in": "query", "required": False,
             "description": f"larger values are capped at {PAGE_SIZE_MAX}",
             "schema": {"type": "integer", "minimum": 1, "default": PAGE_SIZE_DEFAULT}},
        ],
        {"description": "One page of trainings.", **_json(_ref("TrainingPage"))},
        **{"400": _error("`page` or `page_size` is not a whole number of 1 or more.",
                         "bad_request", "page must be a whole number, 1 or more, got 'x'.")},
    )
    paths = {}
    for route, item in (
        (INSTITUTE.api_path, _list("institutes", "InstituteList", _ids_filter(
            "id", "only the institutes with these ids"))),
        (TRAINING.api_path, _list("trainings", "TrainingList", _ids_filter(
            "institute", "only the trainings of these institutes"))),
        (TRAINING.path("{training_id}"), training),
        (INSTITUTE.path("{institute_id}"), institute),
        (INSTITUTE.path("{institute_id}") + TRAINING.api_path, trainings),
    ):
        paths[route] = item
        # The same answer with a .json suffix, for clients that add one.
        paths[f"{route}.json"] = item
    paths.update(_partner_paths())
    paths.update(_mirror_paths())
    paths.update(_partner_action_paths())
    return paths


def _ids_filter(name: str, what: str) -> dict:
    return {
        "name": name, "in": "query", "required": False, "style": "form", "explode": True,
        "description": f"{what} (repeatable, at most {IDS_PARAMETER_MAX}: `?{name}=1&{name}=2`); "
        "a partner with a scope lists its part with its scope's institute ids",
        "schema": {"type": "array", "maxItems": IDS_PARAMETER_MAX,
                   "items": {"type": "integer", "minimum": 1}},
    }


def _list(what: str, schema: str, ids_filter: dict) -> dict:
    bad = _error(
        "A parameter is malformed: `updated_since` is not an RFC 3339 time with an offset "
        "(of at most ±14:00, in the years 1 to 9999 in UTC), `after`/`before` is not a "
        "position from a link (or both are given), `page_size` "
        f"is not a whole number of 1 or more, `{ids_filter['name']}` is not an id or is "
        "given too often.",
        "bad_request", "updated_since must be an RFC 3339 date and time with its offset (at "
        "most ±14:00, in the years 1 to 9999), like 2026-11-29T19:49:52Z or "
        "2026-11-29T20:49:52+01:00; got 'yesterday' (not a date and time).",
    )
    return _get(
        f"Every {what[:-1]}",
        f"All {what}, ordered by `updated_at` then `id`, a page at a time: follow `next` "
        "until it is null. Pages are positions, not offsets, so a walk misses nothing "
        "while the catalogue changes: an object changed meanwhile moves to the end and is "
        "listed again there. A full walk tells a mirror what exists (anything it has that "
        "is not listed was removed); with `updated_since` it lists only what changed since.",
        [
            {"name": "updated_since", "in": "query", "required": False,
             "description": "only objects whose `updated_at` is at or after this RFC 3339 "
             "time (with `Z` or an offset of at most ±14:00; URL-encode a `+`)",
             "schema": {"type": "string", "format": "date-time"},
             "example": "2026-11-29T19:49:52Z"},
            ids_filter,
            {"name": "page_size", "in": "query", "required": False,
             "description": f"larger values are capped at {PAGE_SIZE_MAX}",
             "schema": {"type": "integer", "minimum": 1, "default": PAGE_SIZE_DEFAULT}},
            {"name": "after", "in": "query", "required": False,
             "description": "a position from a `next` link (opaque)",
             "schema": {"type": "string"}},
            {"name": "before", "in": "query", "required": False,
             "description": "a position from a `previous` link (opaque)",
             "schema": {"type": "string"}},
        ],
        {"description": f"One page of {what}.", **_json(_ref(schema))},
        **{"400": bad},
    )


def _partner_paths() -> dict:
    webhook_id = _id_parameter("webhook_id", "webhook")
    not_yours = _error(
        "The webhook does not exist, or is not one of this key's webhooks: another "
        "partner's webhook answers exactly like a missing one.",
        "not_found", "Webhook 5 does not exist.",
    )
    partner = (" Needs a key that belongs to the webhook (staff create it with "
               "`create_api_key NAME --webhook ID`).")
    return {
        "/webhooks": _get(
            "Your webhooks",
            "The webhooks this key belongs to, with their state and backlog; an empty list "
            "for a key that belongs to none. No signing secret is ever shown.",
            [
                {"name": "page", "in": "query", "required": False,
                 "schema": {"type": "integer", "minimum": 1, "default": 1}},
                {"name": "page_size", "in": "query", "required": False,
                 "description": f"larger values are capped at {PAGE_SIZE_MAX}",
                 "schema": {"type": "integer", "minimum": 1, "default": PAGE_SIZE_DEFAULT}},
            ],
            {"description": "One page of the key's webhooks.", **_json(_ref("WebhookList"))},
            **{
                "400": _error("`page` or `page_size` is not a whole number of 1 or more.",
                              "bad_request", "page must be a whole number, 1 or more, "
                              "got 'x'."),
                "404": _error("A page past the last.", "not_found",
                              "Page 3 does not exist: there are 1 at page_size 100."),
            },
        ),
        "/webhooks/{webhook_id}": _get(
            "One of your webhooks", "Its state and backlog." + partner, [webhook_id],
            {"description": "The webhook.", **_json(_ref("Webhook"))},
            **{"404": not_yours},
        ),
        "/webhooks/{webhook_id}/deliveries": _get(
            "Your deliveries",
            "The batches sent to this webhook (kept for WEBHOOK_RETENTION_DAYS once "
            "accepted), newest first, a page at a time." + partner,
            [
                webhook_id,
                {"name": "state", "in": "query", "required": False,
                 "schema": {"type": "string", "enum": list(DELIVERY_STATES)}},
                {"name": "page", "in": "query", "required": False,
                 "schema": {"type": "integer", "minimum": 1, "default": 1}},
                {"name": "page_size", "in": "query", "required": False,
                 "description": f"larger values are capped at {PAGE_SIZE_MAX}",
                 "schema": {"type": "integer", "minimum": 1, "default": PAGE_SIZE_DEFAULT}},
            ],
            {"description": "One page of deliveries.", **_json(_ref("DeliveryPage"))},
            **{
                "400": _error("`state` is not a delivery state, or `page`/`page_size` is "
                              "not a whole number of 1 or more.", "bad_request",
                              "state must be one of pending, failing, delivered; got 'lost'."),
                "404": _error("Not one of this key's webhooks (or none at all), or a page "
                              "past the last.", "not_found", "Webhook 5 does not exist."),
            },
        ),
        "/webhooks/{webhook_id}/deliveries/{message_id}": _get(
            "One delivery",
            "The body that was sent and every attempt: when, how long, your answer's status "
            "and the start of its body, or the error." + partner,
            [webhook_id, {"name": "message_id", "in": "path", "required": True,
                          "description": "the batch's `webhook-id`",
                          "schema": {"type": "string"}}],
            {"description": "The delivery.", **_json(_ref("DeliveryDetail"))},
            **{"404": _error("Not one of this key's webhooks, or no such delivery.",
                             "not_found", "Webhook 5 has no delivery msg_0.")},
        ),
        "/webhooks/{webhook_id}/resync": _operation(
            "post", "Send me the whole catalogue",
            "Queues an `import` of every institute for this webhook alone. They go out "
            "through the same ordered channel, after what already waits and coalesced with "
            "it, so that applying them the usual way rebuilds the mirror. At most once per "
            f"webhook and once per API key per WEBHOOK_RESYNC_INTERVAL (here "
            f"{settings.WEBHOOK_RESYNC_INTERVAL:g} s)." + partner,
            [webhook_id],
            ("202", {"description": "Queued.", **_json(_ref("ResyncQueued"))}),
            **{
                "404": not_yours,
                "429": {
                    **_error("Asked too soon after the last resync or replay of this "
                             "webhook, or the last one this key asked for (whichever "
                             "webhook).",
                             "too_many_requests", "A resync or replay was queued for "
                             "Partner at 2026-11-29 19:49:52 UTC; ask again in 412 s."),
                    "headers": {"Retry-After": {"schema": {"type": "string"},
                                                "description": "seconds to wait"}},
                },
            },
        ),
        "/webhooks/{webhook_id}/scope": _scope_operation(webhook_id, not_yours, partner),
        "/webhooks/{webhook_id}/test": _operation(
            "post", "Send me a test event",
            "Queues a signed `{\"changes\": []}` batch, as an operator's \"send test event\" "
            "does; it goes out at the dispatcher's next tick, to the URL the webhook has now: "
            "if staff change the URL before it was accepted, it is dropped. At most once per "
            f"webhook and once per API key per WEBHOOK_TEST_INTERVAL (here "
            f"{settings.WEBHOOK_TEST_INTERVAL:g} s)." + partner,
            [webhook_id],
            ("202", {"description": "Queued.", **_json(_ref("TestEventQueued"))}),
            **{
                "404": not_yours,
                "409": _error("The webhook is paused (resume it first), or a batch waits to "
                              "be accepted (a test event never overtakes it: retry that "
                              "delivery now).", "conflict",
                              "Partner has a batch waiting to be accepted (msg_0): resend it "
                              "now and, once it was accepted, send the test event."),
                "429": {
                    **_error("Asked too soon after the last test event of this webhook, or "
                             "the last one this key asked for (whichever webhook).",
                             "too_many_requests", "A test event was queued for Partner at "
                             "2026-11-29 19:49:52 UTC; ask again in 42 s."),
                    "headers": {"Retry-After": {"schema": {"type": "string"},
                                                "description": "seconds to wait"}},
                },
            },
        ),
    }


# --- Verifying a mirror, the ordered feed, replay (issue 22) --------------------------------


def _mirror_schemas(timestamp: dict) -> dict:
    digest = {"type": "string", "pattern": "^[0-9a-f]{16}$",
              "description": "the XOR of md5(\"<id>|<updated_at>\")[:16 hex digits] over the "
              "objects, as 16 hex digits (docs/partners.md)"}
    count = {"type": "integer", "minimum": 0}
    object_id = {"type": "integer", "minimum": 0}
    return {
        "KindDigest": {
            "type": "object",
            "additionalProperties": False,
            "required": ["count", "digest", "min_id", "max_id", "range_url"],
            "properties": {
                "count": count, "digest": digest,
                "min_id": {"type": ["integer", "null"]}, "max_id": {"type": ["integer", "null"]},
                "range_url": {"type": ["string", "null"], "format": "uri",
                              "description": "the digest of [min_id, max_id] with its "
                              "sub-ranges; null for no object"},
            },
        },
        "Digest": {
            "type": "object",
            "additionalProperties": False,
            "required": ["webhook", "rule", "kinds"],
            "properties": {
                "webhook": {"type": "integer"},
                "rule": {"type": "string", "const": "md5-xor-64"},
                "kinds": {"type": "object", "additionalProperties": _ref("KindDigest"),
                          "description": "per object kind the webhook sends"},
            },
            "example": {"webhook": 7, "rule": "md5-xor-64", "kinds": {
                "institute": {"count": 2, "digest": "8fdd12beb03f11b1", "min_id": 1,
                              "max_id": 2, "range_url": "https://api.example.com/webhooks/7/"
                              "digest?kind=institute&from_id=1&to_id=2"}}},
        },
        "RangeDigest": {
            "type": "object",
            "additionalProperties": False,
            "required": ["webhook", "rule", "kind", "from_id", "to_id", "count", "digest"],
            "description": f"`objects` when the range holds at most {RANGE_OBJECTS_MAX} "
            "objects, `ranges` otherwise.",
            "properties": {
                "webhook": {"type": "integer"},
                "rule": {"type": "string", "const": "md5-xor-64"},
                "kind": {"type": "string", "enum": list(OBJECT_KINDS)},
                "from_id": object_id, "to_id": object_id, "count": count, "digest": digest,
                "ranges": {
                    "type": "array",
                    "description": f"{RANGE_PARTS} sub-ranges of equal width (fewer for a "
                    "narrower "
                    "range), in id order, empty ones included",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["from_id", "to_id", "count", "digest", "url"],
                        "properties": {"from_id": object_id, "to_id": object_id,
                                       "count": count, "digest": digest,
                                       "url": {"type": "string", "format": "uri"}},
                    },
                },
                "objects": {
                    "type": "array",
                    "description": "every object of the range, by id",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["id", "updated_at"],
                        "properties": {"id": object_id, "updated_at": timestamp},
                    },
                },
            },
        },
        "ChangesPage": {
            "type": "object",
            "additionalProperties": False,
            "required": ["webhook", "results", "position", "latest_position", "next"],
            "properties": {
                "webhook": {"type": "integer"},
                "results": {
                    "type": "array",
                    "description": "batches in the order they were sent",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["position", "message_id", "state", "created_at",
                                     "delivered_at", "changes"],
                        "properties": {
                            "position": {"type": "integer", "minimum": 1},
                            "message_id": {"type": "string",
                                           "description": "its `webhook-id`"},
                            "state": {"type": "string", "enum": list(DELIVERY_STATES)},
                            "created_at": timestamp,
                            "delivered_at": {**timestamp, "type": ["string", "null"]},
                            "changes": {"type": "array", "items": _ref("Change"),
                                        "description": "the batch's entries, as sent"},
                        },
                    },
                },
                "position": {"type": "integer", "minimum": 0,
                             "description": "the last position of this page: read on "
                             "with after=<position>"},
                "latest_position": {"type": "integer", "minimum": 0},
                "next": {"type": ["string", "null"], "format": "uri",
                         "description": "the next page; null when this one ends the feed"},
            },
        },
        "ReplayQueued": {
            "type": "object",
            "additionalProperties": False,
            "required": ["webhook", "since", "batches", "entries", "message"],
            "properties": {
                "webhook": {"type": "integer"},
                "since": timestamp,
                "batches": count,
                "entries": count,
                "message": {"type": "string"},
            },
        },
    }


def _mirror_paths() -> dict:
    webhook_id = _id_parameter("webhook_id", "webhook")
    not_yours = _error(
        "The webhook does not exist, or is not one of this key's webhooks.",
        "not_found", "Webhook 5 does not exist.",
    )
    too_soon = {
        **_error("Asked too soon after the last resync or replay of this webhook.",
                 "too_many_requests", "A resync or replay was queued for Partner at "
                 "2026-11-29 19:49:52 UTC; ask again in 412 s."),
        "headers": {"Retry-After": {"schema": {"type": "string"},
                                    "description": "seconds to wait"}},
    }
    id_bound = {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}
    return {
        "/webhooks/{webhook_id}/digest": _get(
            "Is my copy right?",
            "Per object kind the webhook sends, the number of objects and their digest "
            "(docs/partners.md gives the rule). With `kind`, `from_id` and `to_id`: the "
            f"same for that id range, cut into {RANGE_PARTS} sub-ranges, or, for a range of "
            f"at most {RANGE_OBJECTS_MAX} objects, the objects' ids and `updated_at`.",
            [
                webhook_id,
                {"name": "kind", "in": "query", "required": False,
                 "description": "required with from_id and to_id",
                 "schema": {"type": "string", "enum": list(OBJECT_KINDS)}},
                {"name": "from_id", "in": "query", "required": False,
                 "description": "first id of the range (included)", "schema": id_bound},
                {"name": "to_id", "in": "query", "required": False,
                 "description": "last id of the range (included)", "schema": id_bound},
            ],
            {"description": "The digest of every kind, or of one range.",
             "content": {"application/json": {"schema": {"oneOf": [
                 _ref("Digest"), _ref("RangeDigest")]}}}},
            **{
                "400": _error("A parameter is missing or not valid (the message names it).",
                              "bad_request", "from_id must be at most to_id, got "
                              "from_id=9 to_id=2."),
                "404": not_yours,
            },
        ),
        "/webhooks/{webhook_id}/changes": _get(
            "What was sent to me, in order",
            "The batches sent to the webhook after a position, in the order they were "
            "sent, with their entries, a page at a time; the last may not be accepted yet "
            "(`state`). Test events are left out.",
            [
                webhook_id,
                {"name": "after", "in": "query", "required": False,
                 "description": "a position, 0 (the default) for the oldest batch retained, "
                 "or a batch's `webhook-id` (msg_…)", "schema": {"type": "string"},
                 "example": "0"},
                {"name": "page_size", "in": "query", "required": False,
                 "description": "batches per page; larger values are capped at 100",
                 "schema": {"type": "integer", "minimum": 1, "default": 10}},
            ],
            {"description": "One page of batches.", **_json(_ref("ChangesPage"))},
            **{
                "400": _error("`after` or `page_size` is not valid, or `after` is past the "
                              "latest position.", "bad_request",
                              "after must be a position (a whole number, 0 for the oldest "
                              "retained batch) or a batch's message id (msg_…), got 'x'."),
                "404": not_yours,
                "410": _error("`after` is no longer retained (accepted batches are kept "
                              "WEBHOOK_RETENTION_DAYS): resync, then read from the latest "
                              "position.", "gone", "Position 12 is not retained for "
                              "webhook 7: … Resync (POST …/resync), then read from the "
                              "latest position."),
            },
        ),
        "/webhooks/{webhook_id}/replay": _operation(
            "post", "Send me again what was sent since a time",
            "Queues again, for this webhook alone, the entries of its batches made since "
            "`since` (within the retention period): they go out through the ordered "
            "channel after what already waits, coalesced with it. `since` comes as a query "
            "parameter or in a JSON body. Shares the resync's rate limit.",
            [webhook_id, {"name": "since", "in": "query", "required": False,
                          "description": "RFC 3339 with offset; or in the body",
                          "schema": {"type": "string", "format": "date-time"}}],
            ("202", {"description": "Queued.", **_json(_ref("ReplayQueued"))}),
            **{
                "400": _error("`since` is missing, not an RFC 3339 time, in the future or "
                              "older than the retention period; or the body is not JSON.",
                              "bad_request", "since is required: an RFC 3339 time within "
                              "the retention period."),
                "404": not_yours,
                "429": too_soon,
            },
        ),
    }


# --- Partner actions: what the portal's acting links do, for a partner's code -------------


def _partner_action_schemas(timestamp: dict) -> dict:
    def done(**properties) -> dict:
        return {
            "type": "object",
            "additionalProperties": False,
            "required": ["webhook", *properties, "message"],
            "properties": {"webhook": {"type": "integer"}, **properties,
                           "message": {"type": "string", "description": "what was done"}},
        }

    return {
        "RetryQueued": done(message_id={"type": "string"}),
        "WebhookPaused": done(state={"type": "string", "enum": ["paused"]}),
        "WebhookResumed": done(state={"type": "string", "enum": ["healthy", "failing"]}),
        "SecretRotated": done(
            secret={"type": "string", "pattern": "^whsec_",
                    "description": "the new signing secret: shown in this answer only"},
            fingerprint={"type": "string", "pattern": "^sha256:[0-9a-f]{12}$",
                         "description": "what the portal shows of it from now on"},
            previous_secret_expires_at={**timestamp, "description": "until when the "
                                        "previous secret keeps signing too"},
        ),
        "UrlChanged": done(url={"type": "string", "format": "uri"}),
        "UrlChange": {
            "type": "object",
            "required": ["url"],
            "properties": {"url": {"type": "string", "format": "uri"}},
        },
        "PortalLinkCreated": {
            "type": "object",
            "additionalProperties": False,
            "required": ["url", "can_act", "expires_at", "message"],
            "properties": {
                "url": {"type": "string", "format": "uri",
                        "description": "open it in a browser; it works once"},
                "can_act": {"type": "boolean"},
                "expires_at": timestamp,
                "message": {"type": "string"},
            },
        },
        "ApiKeyRotated": {
            "type": "object",
            "additionalProperties": False,
            "required": ["key", "prefix", "created_at", "message"],
            "properties": {
                "key": {"type": "string", "pattern": "^sk_",
                        "description": "the new key: shown in this answer only"},
                "prefix": {"type": "string"},
                "created_at": timestamp,
                "message": {"type": "string"},
            },
        },
        "ApiKeyRevoked": {
            "type": "object",
            "additionalProperties": False,
            "required": ["prefix", "message"],
            "properties": {"prefix": {"type": "string"}, "message": {"type": "string"}},
        },
    }


def _partner_action_paths() -> dict:
    webhook_id = _id_parameter("webhook_id", "webhook")
    not_yours = _error(
        "The webhook does not exist, or is not one of this key's webhooks: another "
        "partner's webhook answers exactly like a missing one.",
        "not_found", "Webhook 5 does not exist.",
    )
    recorded = (" Staff see who did it and when on the webhook's admin page. Needs a key "
                "that belongs to the webhook.")

    def action(summary: str, description: str, parameters: list[dict],
               success: tuple[str, dict], **errors) -> dict:
        operation = _operation("post", summary, description + recorded, parameters, success,
                               **{"404": not_yours, **errors})
        return operation

    key_operation = {"404": None}
    return {
        "/webhooks/{webhook_id}/deliveries/{message_id}/retry": action(
            "Retry a failed delivery now",
            "Its next attempt goes out at the dispatcher's next tick instead of at its "
            "backoff time, with the same `webhook-id`.",
            [webhook_id, {"name": "message_id", "in": "path", "required": True,
                          "schema": {"type": "string"}}],
            ("202", {"description": "Queued.", **_json(_ref("RetryQueued"))}),
            **{"404": _error("Not one of this key's webhooks, or no such delivery.",
                             "not_found", "Webhook 5 has no delivery msg_0."),
               "409": _error("The delivery was accepted already, is being sent right "
                             "now, or the webhook is paused (resume it).", "conflict",
                             "Delivery msg_0 was accepted already: there is nothing to "
                             "resend.")},
        ),
        "/webhooks/{webhook_id}/pause": action(
            "Pause your webhook",
            "Nothing is sent while paused; changes keep collecting (coalesced) and go out "
            "when you resume.",
            [webhook_id],
            ("200", {"description": "Paused.", **_json(_ref("WebhookPaused"))}),
        ),
        "/webhooks/{webhook_id}/resume": action(
            "Resume your webhook", "What collected while paused goes out, oldest first.",
            [webhook_id],
            ("200", {"description": "Resumed.", **_json(_ref("WebhookResumed"))}),
        ),
        "/webhooks/{webhook_id}/rotate-secret": action(
            "Rotate your signing secret",
            "A new secret, in this answer only (never shown again: the portal shows its "
            "fingerprint). The previous secret keeps signing next to it for 24 hours, so "
            "that your receiver can switch without rejecting a request.",
            [webhook_id],
            ("200", {"description": "Rotated.", **_json(_ref("SecretRotated"))}),
        ),
        "/webhooks/{webhook_id}/url": {
            "post": {
                **action(
                    "Change your webhook's URL (test first)",
                    "The new URL receives a signed test event (`{\"changes\": []}`) at "
                    "once; only a 2xx answer makes it the webhook's URL. Until then "
                    "everything goes to the old one. The address guard applies.",
                    [webhook_id],
                    ("200", {"description": "Changed.", **_json(_ref("UrlChanged"))}),
                    **{"400": _error("No `url` in a JSON body, or a URL that is malformed "
                                     "or points into a private network.", "bad_request",
                                     "url: Webhooks may only point at public addresses."),
                       "409": _error("The new URL did not accept the test event: nothing "
                                     "changed.", "conflict", "The new URL did not accept the "
                                     "test event (HTTP 500), so the URL was not changed: "
                                     "deliveries still go to the old one."),
                       "429": {
                           **_error("The new URL's test POST counts as a test event: asked "
                                    "within WEBHOOK_TEST_INTERVAL of the webhook's or the "
                                    "key's last one.", "too_many_requests",
                                    "A test event was queued for Partner at 2026-11-29 "
                                    "19:49:52 UTC; ask again in 42 s."),
                           "headers": {"Retry-After": {"schema": {"type": "string"},
                                                       "description": "seconds to wait"}},
                       }},
                )["post"],
                "requestBody": {"required": True, **_json(_ref("UrlChange"))},
            }
        },
        "/portal-links": _operation(
            "post", "A sign-in link to the partner portal",
            "A link for the people of your webhooks' partner: it opens the portal (your "
            "webhooks, deliveries, attempts and your answers) once, within 30 minutes "
            "(PORTAL_LINK_LIFETIME). Body (optional): `{\"can_act\": true}` for a link that "
            "may also resend, pause, resume, rotate the secret and change the URL; "
            "read-only by default.",
            [],
            ("201", {"description": "The link, shown only now.",
                     **_json(_ref("PortalLinkCreated"))}),
            **{**key_operation,
               "400": _error("The body is not a JSON object, or `can_act` is not a boolean.",
                             "bad_request", "can_act must be true or false, got \"yes\"."),
               "409": _error("The key belongs to no webhook (its portal would be empty).",
                             "conflict", "Partner (sk_AbCdE…) belongs to no webhook.")},
        ),
        "/api-key/rotate": _operation(
            "post", "Replace your API key",
            "A new key with the same webhooks, in this answer only; the key that made the "
            "request stops working at once." + recorded.replace(" Needs a key that "
                                                                "belongs to the webhook.", ""),
            [],
            ("201", {"description": "The new key.", **_json(_ref("ApiKeyRotated"))}),
            **key_operation,
        ),
        "/api-key/revoke": _operation(
            "post", "Revoke your API key",
            "The key that made the request stops working at once (401 from then on)."
            + recorded.replace(" Needs a key that belongs to the webhook.", ""),
            [],
            ("200", {"description": "Revoked.", **_json(_ref("ApiKeyRevoked"))}),
            **key_operation,
        ),
    }


def _scope_operation(webhook_id: dict, not_yours: dict, partner: str) -> dict:
    operation = _operation(
        "put", "Choose the part of the catalogue you receive",
        "Replaces the webhook's scope (the same object `scope` shows). Each institute that "
        "entered is sent as an `import` and each one that left as a `destroy`, for this "
        "webhook alone, through the same ordered channel as a resync (after what already "
        "waits, coalesced with it); when `objects` changes, every institute of the new "
        "scope is imported. A change that imports anything is limited as a resync is "
        f"(here once per {settings.WEBHOOK_RESYNC_INTERVAL:g} s); a narrowing never is."
        + partner,
        [webhook_id],
        ("200", {"description": "Set; what it sends is queued.", **_json(_ref("ScopeSet"))}),
        **{
            "400": _error("The body is not a scope, or names institutes that do not exist "
                          "(the message names them).", "bad_request",
                          "Unknown institutes: 9998, 9999."),
            "404": not_yours,
            "429": {
                **_error("A widening asked too soon after the last resync, replay or "
                         "widening of this webhook, or the last one this key asked for.",
                         "too_many_requests", "A resync, replay or widened scope was "
                         "queued for Partner at 2026-11-29 19:49:52 UTC; ask again in "
                         "412 s."),
                "headers": {"Retry-After": {"schema": {"type": "string"},
                                            "description": "seconds to wait"}},
            },
        },
    )
    operation["put"]["requestBody"] = {"required": True, **_json(_ref("Scope"))}
    return operation


def _webhook(base: str) -> dict:
    retry = ", ".join(f"{seconds:g} s" for seconds in settings.WEBHOOK_RETRY_SCHEDULE)
    header = {"in": "header", "required": True}
    return {
        "post": {
            "summary": "A batch of changes to the catalogue",
            # Not the API key: the partner checks the signature headers instead.
            "security": [],
            "description": (
                "Springhook POSTs this to the partner's webhook URL when trainings or "
                "institutes changed: bundled (many changes of one object are one entry), "
                "ordered by each object's latest change, at most one batch in flight per "
                "webhook, and a later batch only after the earlier one was accepted. "
                "Verify the signature with any Standard Webhooks library (a timestamp more "
                "than 5 minutes off should be refused), answer 2xx quickly, then fetch the "
                "`url`s with your API key. Delivery is at least once: a repeated "
                "`webhook-id` is the same batch again and must be ignored."
            ),
            "parameters": [
                {**header, "name": "webhook-id",
                 "description": "The batch's id: the same on every retry of this batch.",
                 "schema": {"type": "string", "pattern": "^msg_[0-9a-f]{32}$"},
                 "example": "msg_12090797ab1446074e48bcf969408103"},
                {**header, "name": "webhook-timestamp",
                 "description": "Unix seconds of this attempt: every retry is signed anew.",
                 "schema": {"type": "string", "pattern": "^[0-9]+$"},
                 "example": "1795981792"},
                {**header, "name": "webhook-signature",
                 "description": (
                     "`v1,` + base64 of HMAC-SHA256 over `<webhook-id>.<webhook-timestamp>."
                     "<body>` with the secret (`whsec_` + base64 key). While the secret is "
                     "being rotated, two signatures separated by one space: either one "
                     "matching is enough."
                 ),
                 "schema": {"type": "string",
                            "pattern": r"^v1,[A-Za-z0-9+/]+={0,2}( v1,[A-Za-z0-9+/]+={0,2})?$"},
                 "example": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="},
                {**header, "name": "User-Agent",
                 "schema": {"type": "string", "pattern": "^Springhook/"},
                 "example": USER_AGENT},
            ],
            "requestBody": {
                "required": True,
                "description": "Compact UTF-8 JSON, byte for byte the body that was signed.",
                **_json(
                    _ref("WebhookPayload"),
                    example={"changes": [
                        {"action": "import", "object": INSTITUTE.name, "id": 234234,
                         "url": base + INSTITUTE.path(234234)},
                        {"action": "update", "object": TRAINING.name, "id": 345345,
                         "url": base + TRAINING.path(345345)},
                        {"action": "destroy", "object": TRAINING.name, "id": 34534},
                    ]},
                ),
            },
            "responses": {
                "2XX": {"description": "Accepted: the batch is done and will not be sent "
                        "again (unless the answer is lost on the way)."},
                "410": {"description": "Gone: the webhook is paused (the admin shows why). "
                        "Nothing is dropped: changes keep collecting and are sent when an "
                        "operator resumes it."},
                "429": {
                    "description": "Too many requests: retried, no sooner than `Retry-After` "
                    f"(honoured up to {RETRY_AFTER_CAP:g} s) nor the backoff.",
                    "headers": {"Retry-After": {"schema": {"type": "string"},
                                                "description": "seconds, or an HTTP date"}},
                },
                "503": {
                    "description": "Unavailable: retried like 429, honouring `Retry-After`.",
                    "headers": {"Retry-After": {"schema": {"type": "string"},
                                                "description": "seconds, or an HTTP date"}},
                },
                "default": {
                    "description": (
                        "Anything else — other 4xx and 5xx, a redirect (never followed), no "
                        f"answer within the timeout ({settings.WEBHOOK_TIMEOUT:g} s), a "
                        "connection, TLS or DNS error — is a failed attempt. The same batch "
                        f"(same webhook-id) is retried after {retry}, then at the last "
                        "interval until it is accepted; newer changes wait, coalesced."
                    )
                },
            },
        }
    }


def openapi_document() -> dict:
    """The OpenAPI 3.1 document, with this deployment's API_BASE_URL as its server."""
    base = settings.API_BASE_URL
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Trainings API and Springhook webhooks",
            "version": core.__version__,
            "description": (
                "Read-only JSON about trainings and institutes, the webhook that tells "
                "partners what changed, and the partners' own endpoints: their webhooks, "
                "deliveries, a resync and a test event. Every API request needs an API key; "
                "every answer, errors included, is JSON."
            ),
        },
        "servers": [{"url": base}],
        "security": [{"ApiKeyHeader": []}, {"ApiKeyQuery": []}],
        "paths": _paths(),
        "webhooks": {"changes": _webhook(base)},
        "components": {
            "schemas": _schemas(base),
            "securitySchemes": {
                "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": API_KEY_HEADER},
                "ApiKeyQuery": {
                    "type": "apiKey", "in": "query", "name": API_KEY_PARAMETER,
                    "description": "For clients that cannot set headers; ends up in logs.",
                },
            },
        },
    }
