import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def start_django(**env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "springhook.settings", **env},
        capture_output=True,
        text=True,
    )


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("WEBHOOK_BATCH_SIZE", "lots", "WEBHOOK_BATCH_SIZE must be a whole number, got 'lots'"),
        ("WEBHOOK_BATCH_SIZE", "0", "WEBHOOK_BATCH_SIZE must be at least 1"),
        ("WEBHOOK_BUNDLE_DELAY", "soon", "WEBHOOK_BUNDLE_DELAY must be a number"),
        ("WEBHOOK_TIMEOUT", "nan", "WEBHOOK_TIMEOUT must be a finite number"),
        ("WEBHOOK_RETRY_SCHEDULE", "10,x", "WEBHOOK_RETRY_SCHEDULE must be comma-separated"),
        ("WEBHOOK_RETRY_SCHEDULE", "10,-5", "WEBHOOK_RETRY_SCHEDULE must list positive"),
        ("WEBHOOK_ALLOW_PRIVATE_URLS", "maybe", "WEBHOOK_ALLOW_PRIVATE_URLS must be 1 or 0"),
        ("SPRINGHOOK_ENV", "staging", "SPRINGHOOK_ENV must be 'development' or 'production'"),
    ],
)
def test_a_bad_setting_stops_startup_naming_the_variable(variable, value, message):
    result = start_django(**{variable: value})
    assert result.returncode != 0
    assert message in result.stderr


def test_good_settings_start():
    result = start_django(WEBHOOK_BATCH_SIZE="100", WEBHOOK_RETRY_SCHEDULE="1,2,3")
    assert result.returncode == 0, result.stderr
