"""The bench's plumbing for its figures: the spread over rounds, waiting for every
partner to have every entry, and the goals the new figures are held to."""

from __future__ import annotations

import json
import time

import pytest
import requests

from bench.__main__ import GOALS, goal_met, table
from bench.measures import partner_wait_entries, spread
from bench.partner import FastPartner


def test_the_spread_is_the_interquartile_range_of_the_rounds():
    assert spread([1.0]) == 0.0
    assert spread([1.00, 1.02, 1.01, 1.03, 1.50]) == pytest.approx(0.02)
    # One wild round moves the spread far less than the range.
    assert spread([1.0, 1.0, 1.0, 1.0, 9.0]) == 0.0


def _post(partner: FastPartner, path: str, ids: range) -> None:
    body = {"changes": [{"action": "update", "object": "training", "id": n} for n in ids]}
    requests.post(partner.url + path, data=json.dumps(body)).raise_for_status()


def test_waiting_for_entries_ends_at_the_last_arrival_once_every_path_has_them_all():
    with FastPartner() as partner:
        _post(partner, "/w/0", range(1, 4))
        _post(partner, "/w/1", range(1, 3))
        with pytest.raises(RuntimeError, match="expected 2×3"):
            partner_wait_entries(partner, paths=2, per_path=3, batches=2, timeout=0.2)
        _post(partner, "/w/1", range(3, 4))
        before = time.time()
        last = partner_wait_entries(partner, paths=2, per_path=3, batches=3, timeout=5)
        assert last == partner.requests[-1].arrived_at <= before


def test_the_new_figures_are_held_to_the_issues_goals():
    assert goal_met("catchup_ratio", 0.29) is False and goal_met("catchup_ratio", 0.3)
    assert goal_met("fanout_body_ratio", 1.0) and goal_met("fanout_body_ratio", 100.0) is False
    assert goal_met("import_ratio_spread", 0.03) is False
    assert goal_met("resync_delivery_ratio", 0.08) is None  # shown, with no goal
    lines = table({"catchup_ratio": 0.05, "fanout_body_ratio": 1.0}).splitlines()
    assert lines[1].split()[-1] == "MISSED" and lines[2].split()[-1] == "ok"
    assert {"catchup_ratio", "fanout_body_ratio", "import_ratio_spread"} <= set(GOALS)
