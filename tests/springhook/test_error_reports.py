"""Error reports mask every secret of the settings and of the request
(springhook/errorreports.py), and the web process mails no error at all: a failing
request, a 503 from /healthz and a wrong Host are each one logfmt line in gunicorn's
output, which carries no secret."""

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.test import RequestFactory, override_settings
from django.views.debug import get_exception_reporter_class, get_exception_reporter_filter

from tests.springhook.test_logs import read_whole
from tests.test_deployment import free_port, http_get
from tests.test_settings import production_environment

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "sk_live_do-not-show-me-0123456789"
BROKER_PASSWORD = "broker-pass-do-not-show"
DATABASE_PASSWORD = "db-pass-do-not-show"


def failing_report(request) -> tuple[str, str]:
    """The text and HTML report of an error raised while a local holds a secret URL."""
    connection_url = f"redis://:{BROKER_PASSWORD}@redis.internal:6379/0"  # noqa: F841
    try:
        raise RuntimeError("the broker did not answer")
    except RuntimeError:
        exc_info = sys.exc_info()
    reporter = get_exception_reporter_class(request)(request, *exc_info, is_email=True)
    return reporter.get_traceback_text(), reporter.get_traceback_html()


@override_settings(
    DEBUG=False,
    CELERY_BROKER_URL=f"redis://:{BROKER_PASSWORD}@redis.internal:6379/0",
    DATABASES_REPLICA_URL=f"postgres://springhook:{DATABASE_PASSWORD}@db.internal/springhook",
    METRICS_TOKEN="metrics-token-do-not-show",
)
@pytest.mark.parametrize("debug", [False, True])
def test_a_report_masks_the_settings_and_the_request(debug, settings):
    settings.DEBUG = debug
    request = RequestFactory().post(
        f"/trainings?api_key={API_KEY}&page=2",
        data={"password": "post-pass-do-not-show", "name": "kept"},
        HTTP_X_API_KEY=API_KEY,
        HTTP_AUTHORIZATION="Bearer metrics-token-do-not-show",
        # What gunicorn and other servers add: the request line's target, query included.
        RAW_URI=f"/trainings?api_key={API_KEY}&page=2",
        HTTP_REFERER="https://portal.example/keys?token=metrics-token-do-not-show&tab=1",
    )
    text, html = failing_report(request)
    for report in (text, html):
        for secret in (API_KEY, BROKER_PASSWORD, DATABASE_PASSWORD, "post-pass-do-not-show",
                       "metrics-token-do-not-show"):
            assert secret not in report
        assert "the broker did not answer" in report
        assert "ROOT_URLCONF" in report  # what is not secret stays, to help
    # A local variable's URL keeps all but its password.
    assert "redis://:********************@redis.internal:6379/0" in html
    assert "page=2" in text and "kept" in text and "tab=1" in text
    assert get_exception_reporter_filter(request).is_active(request)


def test_a_password_in_any_url_of_a_value_is_masked():
    from springhook.errorreports import SecretsFilter

    cleansed = SecretsFilter().cleanse_setting(
        "SOMETHING", "primary amqp://user:p%40ss@mq:5672// and https://host/path?q=1")
    assert cleansed == ("primary amqp://user:********************@mq:5672// and"
                        " https://host/path?q=1")
    cleansed = SecretsFilter().cleanse_setting(
        "NEXT", "/trainings?page=2&API_KEY=sk_1&x-auth-token=t;q=3#frag")
    assert cleansed == ("/trainings?page=2&API_KEY=********************"
                        "&x-auth-token=********************;q=3#frag")


@pytest.mark.slow
def test_web_errors_are_one_logfmt_line_each_and_mail_nothing(tmp_path):
    """A production gunicorn with admins to mail and the console mail backend (which would
    print any mail into this very output), on a database that lost its API keys table:
    every API request fails."""
    environment = {
        **os.environ,
        **production_environment(),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "DJANGO_ALLOWED_HOSTS": "webhooks.example.com",
        "DJANGO_ADMINS": "ops@example.com",
        "DJANGO_EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend",
        "CELERY_BROKER_URL": f"redis://:{BROKER_PASSWORD}@127.0.0.1:9/0",
        "DJANGO_STATIC_ROOT": str(tmp_path / "static"),
        "WEB_BIND": f"127.0.0.1:{(port := free_port())}",
        "LOG_LEVEL": "INFO",
    }
    subprocess.run([sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
                   cwd=ROOT, env=environment, check=True)
    with sqlite3.connect(tmp_path / "db.sqlite3") as database:
        database.execute("DROP TABLE apikeys_apikey")  # every API request now fails
    output_path = tmp_path / "web.log"
    with output_path.open("wb") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "springhook.wsgi", "--workers", "1"],
            cwd=ROOT, env=environment, stdout=output, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while "Booting worker" not in output_path.read_text():
            assert server.poll() is None and time.monotonic() < deadline, output_path.read_text()
            time.sleep(0.2)
        https = {"Host": "webhooks.example.com", "X-Forwarded-Proto": "https"}
        failed = http_get(port, f"/trainings?api_key={API_KEY}", https)
        assert failed.status == 500
        assert http_get(port, "/healthz", {"Host": "webhooks.example.com"}).status == 503
        assert http_get(port, "/", {"Host": "scanner.invalid"}).status == 400
        time.sleep(1)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert server.returncode == 0
    text = output_path.read_text()
    for secret in (API_KEY, BROKER_PASSWORD):
        assert secret not in text
    assert "Subject:" not in text and "ops@example.com" not in text
    lines = [read_whole(line) for line in text.splitlines()]
    errors = [fields for fields in lines if fields["level"] in ("error", "critical")]
    assert [(fields["logger"], fields["msg"]) for fields in errors] == [
        ("django.request", "Internal Server Error: /trainings"),
        ("django.request", "Service Unavailable: /healthz"),
    ], errors
    assert "OperationalError" in errors[0]["exc"] and "\n" in errors[0]["exc"]
    (refused,) = [fields for fields in lines if fields["logger"].startswith("django.security")]
    assert refused["level"] == "warning" and "exc" not in refused
    assert "scanner.invalid" in refused["msg"]
    requests = [fields for fields in lines if fields["event"] == "request"]
    assert [(r["method"], r["path"], r["status"]) for r in requests] == [
        ("GET", "/trainings", "500"), ("GET", "/healthz", "503"), ("GET", "/", "400"),
    ]
    assert {fields["logger"] for fields in lines} >= {"gunicorn.error", "gunicorn.access"}
