"""A missing or bad variable stops every process at start with one line naming it, and no
traceback: manage.py, gunicorn, and Celery worker and beat, each a real subprocess."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from springhook.env import EXIT_CONFIGURATION
from tests.test_settings import production_environment

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PREFIX = "springhook: configuration error: "

PROCESSES = {
    "manage.py": [sys.executable, "manage.py", "check"],
    "gunicorn": [str(BIN / "gunicorn"), "springhook.wsgi", "--bind", "127.0.0.1:0",
                 "--access-logfile", "-"],
    "worker": [str(BIN / "celery"), "-A", "springhook", "worker", "--loglevel", "INFO"],
    "beat": [str(BIN / "celery"), "-A", "springhook", "beat", "--loglevel", "INFO",
             "--schedule", "{tmp}/beat-schedule"],
}
BAD_ENVIRONMENTS = {
    "production without DATABASE_URL": (
        {**production_environment(), "DATABASE_URL": ""},
        "SPRINGHOOK_ENV=production needs DATABASE_URL set",
    ),
    "a bad number": ({"WEBHOOK_BATCH_SIZE": "lots"}, "WEBHOOK_BATCH_SIZE must be a whole number"),
    "a bad API_BASE_URL": ({"API_BASE_URL": "not-a-url"}, "API_BASE_URL must be an http://"),
    "a bad DATABASE_URL": ({"DATABASE_URL": "nonsense"}, "DATABASE_URL must be a database URL"),
    "a bad LOG_LEVEL": ({"LOG_LEVEL": "loud"}, "LOG_LEVEL must be DEBUG, INFO"),
}


def run(argv: list[str], environment: dict[str, str], tmp_path: Path) -> tuple[int, list[str]]:
    result = subprocess.run(
        [part.format(tmp=tmp_path) for part in argv],
        cwd=ROOT,
        env={**os.environ, "CELERY_BROKER_URL": "redis://127.0.0.1:1/0", **environment},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=60,
    )
    return result.returncode, result.stdout.splitlines()


@pytest.mark.parametrize("process", PROCESSES)
@pytest.mark.parametrize("case", BAD_ENVIRONMENTS)
def test_a_bad_variable_stops_the_process_with_one_line(process, case, tmp_path):
    environment, message = BAD_ENVIRONMENTS[case]
    status, lines = run(PROCESSES[process], environment, tmp_path)
    assert status == EXIT_CONFIGURATION, lines
    errors = [line for line in lines if line.startswith(PREFIX)]
    assert len(errors) == 1 and message in errors[0], lines
    assert len(lines) == 1, lines


def test_gunicorn_without_the_project_config_still_stops_without_a_traceback(tmp_path):
    """Started with another config file, gunicorn loads the settings only in its worker:
    the worker exits with gunicorn's "App failed to load" status, and the master stops
    instead of booting the worker again and again."""
    config = tmp_path / "other.conf.py"
    config.write_text("")
    status, lines = run(
        [str(BIN / "gunicorn"), "-c", str(config), "springhook.wsgi", "--bind", "127.0.0.1:0",
         "--no-control-socket"],
        {"WEBHOOK_BATCH_SIZE": "lots"}, tmp_path,
    )
    assert status == 4, lines
    assert not any("Traceback" in line for line in lines), lines
    assert [line for line in lines if line.startswith(PREFIX)] == [
        PREFIX + "WEBHOOK_BATCH_SIZE must be a whole number, got 'lots'"
    ]


@pytest.mark.parametrize("process", ["worker", "beat"])
def test_celery_without_a_broker_refuses_to_start_and_says_what_to_set(process, tmp_path):
    status, lines = run(PROCESSES[process], {"CELERY_BROKER_URL": ""}, tmp_path)
    assert status == EXIT_CONFIGURATION, lines
    # Beat says so before its "celery beat v… is starting." (springhook/celery.py).
    assert lines == [
        PREFIX + "a Celery worker or beat needs CELERY_BROKER_URL (e.g."
        " redis://127.0.0.1:6379/0); without a broker, run `python manage.py run_dispatcher`"
        " instead"
    ]


def test_a_broker_url_with_an_unknown_scheme_is_refused_without_showing_it(tmp_path):
    status, lines = run(
        PROCESSES["manage.py"], {"CELERY_BROKER_URL": "redsi://:hunter2@127.0.0.1/0"}, tmp_path
    )
    assert status == EXIT_CONFIGURATION
    assert lines == [PREFIX + "CELERY_BROKER_URL must be a broker URL like"
                     " redis://127.0.0.1:6379/0, got one with the scheme 'redsi'"]


def test_the_embedded_dispatcher_refuses_to_start_next_to_celery(tmp_path):
    """With CELERY_BROKER_URL set, Celery workers and beat do the dispatcher's work: it
    stops with one line, unless told to run alongside them."""
    status, lines = run([sys.executable, "manage.py", "run_dispatcher"], {}, tmp_path)
    assert status == EXIT_CONFIGURATION, lines
    assert len(lines) == 1 and lines[0].startswith(PREFIX), lines
    assert "CELERY_BROKER_URL is set" in lines[0] and "--alongside-celery" in lines[0]
    status, lines = run([sys.executable, "manage.py", "run_dispatcher", "--help"], {}, tmp_path)
    assert status == 0 and any("--alongside-celery" in line for line in lines)
