"""The body partners receive: compact UTF-8 JSON, byte for byte what is signed
(docs/webhooks.md describes it for partners)."""

import json
from collections.abc import Iterable

from changes.kinds import object_kind_get
from changes.models import Action


def entry_json(*, object_kind: str, object_id: int, action: str) -> dict:
    entry = {"action": action, "object": object_kind, "id": object_id}
    if action != Action.DESTROY:
        entry["url"] = object_kind_get(object_kind).url(object_id)
    return entry


def payload_render(entries: Iterable) -> str:
    """Render entries (with object_kind, object_id, action) as the exact body text."""
    body = {
        "changes": [
            entry_json(object_kind=e.object_kind, object_id=e.object_id, action=e.action)
            for e in entries
        ]
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)
