"""The OpenAPI 3.1 description of the Trainings API and of the webhook Springhook sends.

Built from the code's own constants (page sizes, the key header, the User-Agent, the retry
schedule), served at /openapi.json. Tests validate the document and check real API
answers and real deliveries against its schemas, so it cannot drift from the code.
"""

from django.conf import settings

import springhook
from apikeys.api import API_KEY_HEADER, API_KEY_PARAMETER, PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX
from deliveries.services import RETRY_AFTER_CAP, USER_AGENT

SCHEMAS = "#/components/schemas/"
OBJECT_URL_PATTERN = r"/(trainings|institutes)/[0-9]+$"
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
    object_kind = {"type": "string", "enum": ["training", "institute"]}
    change_url = {
        "type": "string",
        "format": "uri",
        # Never a format extension, never an API key (SPEC §1).
        "pattern": OBJECT_URL_PATTERN,
        "description": "API_BASE_URL + /trainings/<id> or /institutes/<id>; the partner "
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
                "updated_at": _EXAMPLE_TIME, "url": f"{base}/trainings/3",
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
                "updated_at": _EXAMPLE_TIME, "url": f"{base}/institutes/1",
                "trainings_url": f"{base}/institutes/1/trainings",
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
                "object": {"const": "institute"},
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


def _id_parameter(name: str, what: str) -> dict:
    return {"name": name, "in": "path", "required": True, "description": f"the {what}'s id",
            "schema": {"type": "integer", "minimum": 0}}


def _get(summary: str, description: str, parameters: list[dict], ok: dict, **errors) -> dict:
    responses = {
        "200": ok,
        "401": _error(
            "No API key, or one that is unknown or revoked (with `WWW-Authenticate: ApiKey`).",
            "unauthorized", "The API key is not valid: it is unknown or was revoked.",
        ),
        "404": _error("The object does not exist (it was removed, or never existed).",
                      "not_found", "Training 5 does not exist."),
        "405": _error("A method other than GET or HEAD: this endpoint only reads.",
                      "method_not_allowed", "POST is not allowed here: use GET."),
        **errors,
    }
    return {"get": {"summary": summary, "description": description, "parameters": parameters,
                    "responses": responses}}


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
        ("/trainings/{training_id}", training),
        ("/institutes/{institute_id}", institute),
        ("/institutes/{institute_id}/trainings", trainings),
    ):
        paths[route] = item
        # The same answer with a .json suffix, for clients that add one.
        paths[f"{route}.json"] = item
    return paths


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
                        {"action": "import", "object": "institute", "id": 234234,
                         "url": f"{base}/institutes/234234"},
                        {"action": "update", "object": "training", "id": 345345,
                         "url": f"{base}/trainings/345345"},
                        {"action": "destroy", "object": "training", "id": 34534},
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
            "version": springhook.__version__,
            "description": (
                "Read-only JSON about trainings and institutes, and the webhook that tells "
                "partners what changed. Every API request needs an API key; every answer, "
                "errors included, is JSON."
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
