"""The deployment files name only things that exist in the project.

docker-compose.yml and the Dockerfile cannot be run on a machine without a Docker engine,
so these tests read them and check every command, module, path and variable they name
against the project itself. (`.ci/run` also validates the compose file's syntax.)
"""

import http.client
import importlib
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from celery.app.control import Inspect
from celery.app.utils import find_app
from celery.bin.celery import celery as celery_command
from django.conf import settings
from django.core.management import get_commands
from django.urls import Resolver404, resolve

from tests.test_settings import production_environment

ROOT = Path(__file__).resolve().parents[1]
APP_SERVICES = {"migrate", "web", "worker", "beat"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def service_commands(compose: dict) -> list[tuple[str, list[str]]]:
    """(service, argv) of every command and health check of the app's services."""
    commands = []
    for name, service in compose["services"].items():
        if name not in APP_SERVICES:
            continue
        if "command" in service:
            commands.append((name, as_argv(service["command"])))
        test = service.get("healthcheck", {}).get("test")
        if test:
            kind, *rest = test
            argv = shlex.split(rest[0]) if kind == "CMD-SHELL" else rest
            commands.append((name, argv))
    return commands


def as_argv(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else list(command)


def dockerfile_lines() -> list[tuple[str, str]]:
    """(instruction, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, arguments = line.partition(" ")
            lines.append((instruction.upper(), arguments.strip()))
    return lines


def check_command(argv: list[str]) -> None:
    """Fail unless `argv` runs something this project has."""
    program, *args = argv
    if program == "python" and args[0] == "manage.py":
        assert args[1] in get_commands(), f"no management command {args[1]!r}"
    elif program == "python" and args[0] == "-m":
        module = importlib.import_module(args[1])
        assert hasattr(module, "main"), f"{args[1]} has no main()"
        if args[1] == "springhook.probe":
            path = args[2]
            try:
                resolve(path)
            except Resolver404:
                pytest.fail(f"the health probe asks for {path}, which no URL answers")
    elif program == "gunicorn":
        module_name, _, attribute = args[0].partition(":")
        module = importlib.import_module(module_name)
        assert callable(getattr(module, attribute or "application"))
    elif program == "celery":
        assert args[0] == "-A"
        app = find_app(args[1])
        app.loader.import_default_modules()
        assert "deliveries.dispatch_tick" in app.tasks
        assert "deliveries.send" in app.tasks
        subcommand = args[2]
        assert subcommand in celery_command.commands, f"no celery command {subcommand!r}"
        if subcommand == "inspect":
            assert callable(getattr(Inspect, args[3], None)), f"no inspect {args[3]!r}"
    else:
        pytest.fail(f"unknown program {program!r} in {argv}")


def test_every_command_of_the_app_services_exists(compose):
    commands = service_commands(compose)
    assert {name for name, _ in commands} == APP_SERVICES
    for _, argv in commands:
        check_command(argv)


def test_the_dockerfile_command_exists():
    (cmd,) = [arguments for instruction, arguments in dockerfile_lines() if instruction == "CMD"]
    check_command(json.loads(cmd))


def test_the_dockerfile_collectstatic_step_runs_with_its_own_variables(tmp_path):
    """The build step's RUN line, with the image's ENV and nothing from this machine: the
    production settings it loads must find every variable they require."""
    instructions = dockerfile_lines()
    (run,) = [arguments for instruction, arguments in instructions
              if instruction == "RUN" and "collectstatic" in arguments]
    image_env = {}
    for instruction, arguments in instructions:
        if instruction == "ENV":
            for assignment in shlex.split(arguments):
                name, _, value = assignment.partition("=")
                image_env[name] = value
    image_env["DJANGO_STATIC_ROOT"] = str(tmp_path / "static")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (bin_dir / "python").chmod(0o755)
    result = subprocess.run(
        ["bash", "-c", run], cwd=ROOT, capture_output=True, text=True,
        env={**image_env, "PATH": f"{bin_dir}:/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "static" / "staticfiles.json").exists()


def test_web_worker_and_beat_start_after_the_migration(compose):
    services = compose["services"]
    for name in ("web", "worker", "beat"):
        depends = services[name]["depends_on"]
        assert depends["migrate"] == {"condition": "service_completed_successfully"}, name
    assert services["migrate"]["restart"] == "no"


def test_exactly_one_beat_and_health_checks_for_the_long_running_services(compose):
    services = compose["services"]
    assert services["beat"]["deploy"]["replicas"] == 1
    for name in ("postgres", "redis", "web", "worker"):
        assert services[name]["healthcheck"]["test"], name


def test_postgres_keeps_its_data_in_a_named_volume(compose):
    (volume,) = compose["services"]["postgres"]["volumes"]
    name, _, target = volume.partition(":")
    assert name in compose["volumes"]
    assert target == "/var/lib/postgresql/data"


def test_dockerfile_copies_existing_files_and_every_project_app():
    copied = []
    for instruction, arguments in dockerfile_lines():
        if instruction == "COPY":
            *sources, _destination = arguments.split()
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: no such file"
                copied.append(source.rstrip("/"))
    project_apps = [app for app in settings.INSTALLED_APPS if (ROOT / app).is_dir()]
    assert project_apps, "no project app found in INSTALLED_APPS"
    for app in project_apps:
        assert app in copied, f"the Dockerfile does not copy the app {app!r}"
    assert "requirements.txt" in copied
    assert "manage.py" in copied


def env_example() -> tuple[set[str], set[str]]:
    """Names in .env.example: (all documented, set without a leading '#')."""
    documented, active = set(), set()
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = re.match(r"^(#\s*)?([A-Z][A-Z0-9_]*)=", line)
        if match:
            documented.add(match.group(2))
            if not match.group(1):
                active.add(match.group(2))
    return documented, active


def settings_variables() -> set[str]:
    source = (ROOT / "springhook" / "settings.py").read_text()
    names = set(re.findall(r"env_\w+\(\s*\"([A-Z][A-Z0-9_]*)\"", source))
    # Variables checked by name (the ones production requires) are read through env_str too.
    assert {"DJANGO_SECRET_KEY", "DATABASE_URL", "WEBHOOK_BATCH_SIZE"} <= names
    return names


def test_env_example_documents_every_variable_of_the_settings():
    documented, _ = env_example()
    missing = settings_variables() - documented
    assert not missing, f".env.example does not document {sorted(missing)}"


def test_env_example_sets_only_variables_something_reads():
    _, active = env_example()
    compose_text = (ROOT / "docker-compose.yml").read_text()
    used_by_compose = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", compose_text))
    unknown = active - settings_variables() - used_by_compose
    assert not unknown, f".env.example sets {sorted(unknown)}, which nothing reads"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(port: int, path: str, headers: dict[str, str]) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    response.body = response.read()
    connection.close()
    return response


def test_the_image_commands_serve_the_site_in_production(tmp_path):
    """collectstatic as the Dockerfile runs it, then gunicorn as compose runs it: the
    probe passes on the admin login page, static files are served hashed and cacheable,
    plain HTTP is redirected to HTTPS except /healthz and /metrics (behind its token)."""
    environment = {
        **os.environ,
        **production_environment(),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "DJANGO_STATIC_ROOT": str(tmp_path / "static"),
        "DJANGO_ALLOWED_HOSTS": "webhooks.example.com",
        "METRICS_TOKEN": "scrape-token",
    }
    for command in (["collectstatic", "--no-input"], ["migrate", "--no-input"]):
        subprocess.run(
            [sys.executable, "manage.py", *command, "-v", "0"],
            cwd=ROOT, env=environment, check=True,
        )
    assert (tmp_path / "static" / "staticfiles.json").exists()
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "springhook.wsgi", "--bind", f"127.0.0.1:{port}",
         "--workers", "1"],
        cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        probe = [sys.executable, "-m", "springhook.probe", "/admin/login/", "--port", str(port)]
        deadline = time.monotonic() + 60
        while True:
            result = subprocess.run(probe, cwd=ROOT, env=environment, capture_output=True,
                                    text=True)
            if result.returncode == 0 or time.monotonic() > deadline or server.poll() is not None:
                break
            time.sleep(0.3)
        assert result.returncode == 0, result.stdout
        assert "/admin/login/: 200 OK" in result.stdout

        proxied = {"Host": "webhooks.example.com", "X-Forwarded-Proto": "https"}
        page = http_get(port, "/admin/login/", proxied)
        assert "max-age=31536000" in page.getheader("Strict-Transport-Security")
        stylesheet = re.search(rb'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"', page.body)
        assert stylesheet, "the admin links no hashed stylesheet"
        static = http_get(port, stylesheet.group(1).decode(), proxied)
        assert static.status == 200
        assert "immutable" in static.getheader("Cache-Control")

        plain = http_get(port, "/admin/login/", {"Host": "webhooks.example.com"})
        assert plain.status == 301
        assert plain.getheader("Location") == "https://webhooks.example.com/admin/login/"
        # Probes inside the network speak plain HTTP: /healthz answers them (here 503, as
        # no dispatcher ever ticked), it does not redirect.
        health = http_get(port, "/healthz", {"Host": "webhooks.example.com"})
        assert health.status == 503
        assert json.loads(health.body)["status"] == "unhealthy"
        # So does Prometheus, with the token.
        plain_host = {"Host": "webhooks.example.com"}
        assert http_get(port, "/metrics", plain_host).status == 401
        scrape = http_get(port, "/metrics", {**plain_host, "Authorization": "Bearer scrape-token"})
        assert scrape.status == 200
        assert b"springhook_deliveries_open" in scrape.body
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    assert server.returncode == 0, output


UNITS = ROOT / "deploy" / "systemd"


def unit_file(path: Path) -> dict[str, dict[str, str]]:
    """The sections and settings of a systemd unit file (one value per key here)."""
    sections: dict[str, dict[str, str]] = {}
    current = None
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, separator, value = line.partition("=")
        assert separator and current is not None, f"{path.name}: not key=value: {line!r}"
        assert key not in current, f"{path.name}: {key} set twice"
        current[key] = value
    return sections


def bare_section() -> str:
    text = (ROOT / "docs" / "operations.md").read_text()
    start = text.index("### Bare")
    return text[start:text.index("\n## ", start)]


def test_the_systemd_units_run_the_documented_commands_as_the_service_user(compose):
    from springhook.env import EXIT_CONFIGURATION

    units = {path.stem: unit_file(path) for path in sorted(UNITS.glob("*.service"))}
    assert set(units) == {"springhook-web", "springhook-worker", "springhook-beat"}
    doc = bare_section()
    compose_commands = {name: as_argv(service["command"])
                        for name, service in compose["services"].items() if name in APP_SERVICES}
    for name, unit in units.items():
        service = unit["Service"]
        assert f"{name}.service" in doc, f"docs/operations.md does not name {name}.service"
        assert service["User"] == service["Group"] == "springhook"
        for path_key in ("WorkingDirectory", "EnvironmentFile"):
            assert service[path_key].startswith("/") and service[path_key] in doc, path_key
        assert service["WorkingDirectory"] == "/srv/springhook/app"
        assert service["Restart"] == "always"
        assert service["RestartPreventExitStatus"] == str(EXIT_CONFIGURATION)
        assert unit["Install"]["WantedBy"] == "multi-user.target"

        program, *arguments = shlex.split(service["ExecStart"])
        venv_bin = "/srv/springhook/venv/bin/"
        assert program.startswith(venv_bin) and "/srv/springhook/venv" in doc, program
        argv = [program.removeprefix(venv_bin), *arguments]
        check_command(argv)
        role = name.removeprefix("springhook-")
        # The same command as the compose file's, but for where beat keeps its schedule.
        assert argv[:len(compose_commands[role]) - 2] == compose_commands[role][:-2] or (
            argv == compose_commands[role]
        ), (argv, compose_commands[role])
    web = shlex.split(units["springhook-web"]["Service"]["ExecStart"])
    assert web[-2:] == ["--access-logfile", "-"]
    worker_stop = float(units["springhook-worker"]["Service"]["TimeoutStopSec"])
    assert worker_stop > settings.WEBHOOK_CONNECT_TIMEOUT + settings.WEBHOOK_TIMEOUT
    beat = units["springhook-beat"]["Service"]
    schedule = Path(shlex.split(beat["ExecStart"])[shlex.split(beat["ExecStart"]).index(
        "--schedule") + 1])
    assert schedule.parent == Path("/var/lib") / beat["StateDirectory"]
    assert str(schedule.parent) in doc, "the docs do not make beat's schedule directory"


def test_the_bare_steps_name_the_files_of_the_repository():
    doc = bare_section()
    for relative in re.findall(r"/srv/springhook/app/([\w./*-]+)", doc):
        assert list(ROOT.glob(relative)), f"docs/operations.md names {relative}, not in the repo"
    for command in re.findall(r"manage\.py (\w+)", doc):
        assert command in get_commands(), f"no management command {command!r}"
    assert "venv/" in (ROOT / ".gitignore").read_text().split()
