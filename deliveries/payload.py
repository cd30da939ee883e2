"""The body partners receive: compact UTF-8 JSON, byte for byte what is signed
(docs/webhooks.md describes it for partners).

`entry_json` is the entry as a dict: the definition. `payload_render` writes the same
text without building the dicts: a catching-up webhook renders 500 entries per batch, and
json.dumps over 500 dicts cost more than the rest of the batch's Python together. Both
are held byte-equal by tests/deliveries/test_payload.py, whatever the kinds, actions, ids
and API_BASE_URL (escaped once per kind with json.dumps itself).
"""

import json
from collections.abc import Iterable
from functools import lru_cache

from django.conf import settings

from changes.kinds import object_kind_get
from changes.models import Action


def _dumps(value) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def entry_json(*, object_kind: str, object_id: int, action: str) -> dict:
    entry = {"action": action, "object": object_kind, "id": object_id}
    if action != Action.DESTROY:
        entry["url"] = object_kind_get(object_kind).url(object_id)
    return entry


def payload_render(entries: Iterable) -> str:
    """Render entries (with object_kind, object_id, action) as the exact body text:
    `json.dumps({"changes": [entry_json(...), ...]})`, compact and not ASCII-escaped."""
    base_url = settings.API_BASE_URL
    texts = []
    for entry in entries:
        head, url_head = _entry_frame(entry.object_kind, entry.action, base_url)
        number = str(int(entry.object_id))
        texts.append(f"{head}{number}}}" if url_head is None
                     else f"{head}{number}{url_head}{number}\"}}")
    return '{"changes":[' + ",".join(texts) + "]}"


@lru_cache(maxsize=64)
def _entry_frame(object_kind: str, action: str, base_url: str) -> tuple[str, str | None]:
    """The text of an entry of this kind and action around its id: what comes before the
    id, and (unless a destroy, which has no url) what comes between the id and the id
    again at the end of the url. `base_url` is API_BASE_URL, part of the key so that a
    changed setting renders anew."""
    head = _dumps({"action": action, "object": object_kind, "id": 0})
    head = head[: -len("0}")]
    if action == Action.DESTROY:
        return head, None
    # url() is API_BASE_URL + the kind's path ending in "/<id>": everything before the id,
    # JSON-escaped, without its closing quote.
    url_prefix = object_kind_get(object_kind).url(0)[: -len("0")]
    return head, ',"url":' + _dumps(url_prefix)[:-1]
