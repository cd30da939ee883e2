"""The body partners receive (SPEC §1): compact UTF-8 JSON, byte for byte what is signed."""

import json
from collections.abc import Iterable

from django.conf import settings

from changes.models import Action

# Where the Trainings API serves each kind of object.
OBJECT_PATHS = {"training": "/trainings/{id}", "institute": "/institutes/{id}"}


def entry_json(*, object_kind: str, object_id: int, action: str) -> dict:
    entry = {"action": action, "object": object_kind, "id": object_id}
    if action != Action.DESTROY:
        # Never a format extension, never an API key: partners add their own.
        entry["url"] = settings.API_BASE_URL + OBJECT_PATHS[object_kind].format(id=object_id)
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
