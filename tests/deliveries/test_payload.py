"""The body's text: payload_render writes exactly what json.dumps makes of the entries'
dicts (entry_json), whatever the kinds, actions, ids and API base URL."""

import json
import random
from dataclasses import dataclass

import pytest

from changes.kinds import OBJECT_KINDS
from changes.models import Action
from deliveries.payload import entry_json, payload_render


@dataclass(frozen=True)
class Entry:
    object_kind: str
    object_id: int
    action: str


def reference(entries) -> str:
    return json.dumps(
        {"changes": [entry_json(object_kind=e.object_kind, object_id=e.object_id,
                                action=e.action) for e in entries]},
        separators=(",", ":"), ensure_ascii=False,
    )


@pytest.mark.parametrize("base_url", [
    "http://127.0.0.1:8000/api",
    "https://api.example",
    'https://ex"ample.test/a\\b',  # quotes and backslashes escaped as json.dumps does
    "https://bücher.example/api/ü\u2028",  # not ASCII-escaped; U+2028 kept as it is
    "https://x.example/\x01tab\t",  # control characters escaped
])
def test_the_rendered_body_is_json_dumps_of_the_entries(settings, base_url):
    settings.API_BASE_URL = base_url
    rng = random.Random(base_url)
    entries = [
        Entry(rng.choice(list(OBJECT_KINDS)), rng.choice([0, 1, 7, 10**12, rng.randrange(10**9)]),
              rng.choice(list(Action)))
        for _ in range(300)
    ]
    rendered = payload_render(entries)
    assert rendered == reference(entries)
    assert json.loads(rendered)["changes"][0]["object"] == entries[0].object_kind


def test_a_changed_base_url_renders_anew(settings):
    entries = [Entry("training", 5, Action.UPDATE)]
    settings.API_BASE_URL = "https://one.example"
    assert "https://one.example/trainings/5" in payload_render(entries)
    settings.API_BASE_URL = "https://two.example"
    assert payload_render(entries) == reference(entries)
    assert "https://two.example/trainings/5" in payload_render(entries)


def test_no_entries_is_an_empty_list():
    assert payload_render([]) == '{"changes":[]}' == reference([])


def test_an_unknown_kind_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown object kind 'course'"):
        payload_render([Entry("course", 1, Action.UPDATE)])
