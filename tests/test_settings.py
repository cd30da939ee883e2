import os
import secrets
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
        ("API_BASE_URL", "not-a-url", "API_BASE_URL must be an http:// or https:// URL"),
        ("API_BASE_URL", "ftp://api.example.com", "API_BASE_URL must be an http:// or https://"),
        ("API_BASE_URL", "https://", "API_BASE_URL must be an http:// or https:// URL"),
        ("API_BASE_URL", "https://api.example.com/?key=1", "got 'https://api.example.com/?key=1'"),
        ("API_BASE_URL", "https://api.example.com/#top", "API_BASE_URL must be an http://"),
        ("API_BASE_URL", "https://me:pw@api.example.com", "API_BASE_URL must be an http://"),
        ("API_BASE_URL", "https://api.example.com:port", "API_BASE_URL must be an http://"),
        ("API_BASE_URL", "https://api example.com", "API_BASE_URL must be an http://"),
    ],
)
def test_a_bad_setting_stops_startup_naming_the_variable(variable, value, message):
    result = start_django(**{variable: value})
    assert result.returncode != 0
    assert message in result.stderr


def test_good_settings_start():
    result = start_django(WEBHOOK_BATCH_SIZE="100", WEBHOOK_RETRY_SCHEDULE="1,2,3")
    assert result.returncode == 0, result.stderr


def production_environment() -> dict[str, str]:
    """The documented production environment: the values set in .env.example, plus a key."""
    environment = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        name, separator, value = line.partition("=")
        if separator and not name.startswith("#"):
            environment[name] = value
    environment["DJANGO_SECRET_KEY"] = secrets.token_urlsafe(50)
    return environment


def settings_value(name: str, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); from django.conf import settings;"
         f" print(settings.{name})"],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "springhook.settings", **env},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_api_base_url_is_kept_without_its_final_slash():
    assert settings_value("API_BASE_URL", API_BASE_URL=" https://api.example.com/v1/ ") == (
        "https://api.example.com/v1"
    )
    assert settings_value("API_BASE_URL", API_BASE_URL="http://127.0.0.1:8000") == (
        "http://127.0.0.1:8000"
    )


@pytest.mark.parametrize(
    "missing", ["DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS", "DATABASE_URL", "API_BASE_URL"]
)
def test_production_without_a_required_variable_stops_naming_it(missing):
    environment = production_environment()
    environment[missing] = ""
    result = start_django(**environment)
    assert result.returncode != 0
    assert f"SPRINGHOOK_ENV=production needs {missing} set in the environment" in result.stderr


def test_production_names_every_missing_variable_at_once():
    result = start_django(
        SPRINGHOOK_ENV="production", DJANGO_SECRET_KEY="", DJANGO_ALLOWED_HOSTS="", DATABASE_URL="",
        API_BASE_URL="",
    )
    assert result.returncode != 0
    assert (
        "needs DJANGO_SECRET_KEY, DJANGO_ALLOWED_HOSTS, DATABASE_URL, API_BASE_URL set"
        in result.stderr
    )


@pytest.mark.parametrize("debug", ["1", "true", "on"])
def test_production_refuses_to_start_with_debug_on(debug):
    result = start_django(**{**production_environment(), "DJANGO_DEBUG": debug})
    assert result.returncode != 0
    assert "DJANGO_DEBUG=1 is refused with SPRINGHOOK_ENV=production" in result.stderr


def test_production_starts_with_debug_explicitly_off():
    assert settings_value("DEBUG", **{**production_environment(), "DJANGO_DEBUG": "0"}) == "False"


def test_the_documented_production_environment_passes_the_deploy_check():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={**os.environ, **production_environment()},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_the_deploy_check_warns_about_private_urls_in_production():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={**os.environ, **production_environment(), "WEBHOOK_ALLOW_PRIVATE_URLS": "1"},
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "(springhook.W001) WEBHOOK_ALLOW_PRIVATE_URLS is on" in result.stderr
    assert "System check identified 1 issue" in result.stderr


def test_the_deploy_check_warns_about_the_retired_proxy_variable():
    """An environment file from before gunicorn decided the scheme still sets it."""
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={**os.environ, **production_environment(), "DJANGO_BEHIND_TLS_PROXY": "1"},
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "(springhook.W002) DJANGO_BEHIND_TLS_PROXY is no longer read" in result.stderr
    assert "FORWARDED_ALLOW_IPS" in result.stderr


def test_development_defaults_need_no_environment():
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); from django.conf import settings;"
         " print(settings.DEBUG, settings.SECURE_SSL_REDIRECT, settings.SESSION_COOKIE_SECURE)"],
        cwd=ROOT,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "SPRINGHOOK_"))},
            "DJANGO_SETTINGS_MODULE": "springhook.settings",
        },
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "False", "False"]


def test_production_session_cookies_are_secure_httponly_and_same_site():
    # The partner portal's session rides on them (docs/partners.md, "The partner portal").
    production = production_environment()
    assert settings_value("SESSION_COOKIE_SECURE", **production) == "True"
    assert settings_value("SESSION_COOKIE_HTTPONLY", **production) == "True"
    assert settings_value("SESSION_COOKIE_SAMESITE", **production) == "Lax"
