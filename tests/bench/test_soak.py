"""`python -m bench.soak` runs its mix end to end: a short soak, checked, not measured."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db
def test_a_short_soak_delivers_everything_without_deadlocks(tmp_path):
    settings = connection.settings_dict
    server = (f"postgres://{settings['USER']}@{settings['HOST'] or '127.0.0.1'}:"
              f"{settings['PORT'] or 5432}/")
    # A database of its own per checkout, so that two checkouts never drop each other's.
    checkout = hashlib.sha1(str(ROOT).encode()).hexdigest()[:8]
    env = {**os.environ, "DATABASE_URL": server,
           "BENCH_DATABASE_NAME": f"springhook_soak_test_{checkout}"}
    out = tmp_path / "soak.json"
    finished = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--seconds", "8", "--saves-per-second", "10",
         "--json", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    result = json.loads(out.read_text())
    assert result["saves"] >= 60
    assert result["missing"] == 0, "every save reached every webhook"
    assert result["deadlocks"] == 0
    lags = result["lag_beyond_bundle_delay"]
    assert set(lags) == {"fast", "flaky", "slow"}
    assert all(lag["samples"] == result["saves"] * 10 for lag in lags.values())
    # The fast partners never wait for the slow ones' 2 s answers.
    assert lags["fast"]["max"] < lags["slow"]["max"]
    assert any(name.startswith("deliveries_") for name in result["tables"])
    assert "lag beyond the 2 s bundle delay" in finished.stdout
