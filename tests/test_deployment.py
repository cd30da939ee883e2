"""The deployment files name only things that exist in the project.

docker-compose.yml and the Dockerfile cannot be run on a machine without a Docker engine,
so these tests read them and check every command, module, path and variable they name
against the project itself. (`.ci/run` also validates the compose file's syntax.)
"""

import http.client
import importlib
import ipaddress
import json
import os
import re
import shlex
import shutil
import socket
import ssl
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


def image_tree(destination: Path) -> Path:
    """The application directory the Dockerfile's COPY lines make (WORKDIR /app), built
    from the checkout under `destination`, .dockerignore's patterns left out."""
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    workdir = None
    for instruction, arguments in dockerfile_lines():
        if instruction == "WORKDIR":
            workdir = destination / arguments.lstrip("/")
        elif instruction == "COPY":
            assert not arguments.startswith("--"), f"COPY {arguments}: flags not read here"
            *sources, target = arguments.split()
            assert workdir is not None, "COPY before WORKDIR"
            target_path = workdir / target
            for source in sources:
                path = ROOT / source
                assert path.exists(), f"COPY {source}: no such file"
                if path.is_dir():
                    shutil.copytree(path, target_path, dirs_exist_ok=True,
                                    ignore=shutil.ignore_patterns(*ignored))
                else:
                    target_path.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, target_path / path.name)
    assert workdir is not None
    return workdir


# Run inside the image's tree: load everything a process of the image loads (the WSGI
# app and every URL's view, the Celery app and its tasks, every management command) and
# every template of the checkout; print the project modules that were loaded.
IMAGE_LOAD = """
import json, os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "springhook.settings")
import django
django.setup()
import springhook.wsgi
from django.urls import get_resolver
def views(patterns):
    for pattern in patterns:
        if hasattr(pattern, "url_patterns"):
            yield from views(pattern.url_patterns)
        else:
            yield pattern.callback
list(views(get_resolver().url_patterns))
from springhook.celery import app
app.loader.import_default_modules()
from django.core.management import get_commands, load_command_class
for name, app_name in get_commands().items():
    load_command_class(app_name, name)
from django.template.loader import get_template
for name in json.loads(sys.stdin.read()):
    get_template(name)
print(json.dumps(sorted({module.__file__ for module in list(sys.modules.values())
                         if getattr(module, "__file__", None)})))
"""


def checkout_templates() -> list[str]:
    """Names of every template of the project: its templates/ and each app's."""
    names = []
    for directory in [ROOT / "templates", *ROOT.glob("*/templates")]:
        if directory.parts[len(ROOT.parts)] in ("tests", "examples", "bench"):
            continue
        names += [str(path.relative_to(directory)) for path in directory.rglob("*.html")]
    assert "admin/index.html" in names
    return names


def test_the_image_holds_every_file_the_processes_load(tmp_path):
    """Built from the COPY lines: the image's tree loads every view, task, command and
    template by itself, and it holds every directory of the checkout that the running
    code loads from (a missing templates/ made the webhook pages answer 500)."""
    app_dir = image_tree(tmp_path)
    environment = {
        "PATH": os.environ["PATH"],
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    result = subprocess.run(
        [sys.executable, "-c", IMAGE_LOAD], cwd=app_dir, env=environment,
        input=json.dumps(checkout_templates()), capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = [Path(name) for name in json.loads(result.stdout.splitlines()[-1])]
    from_checkout = [path for path in loaded if path.is_relative_to(ROOT)
                     and not path.is_relative_to(ROOT / ".venv")]
    assert not from_checkout, f"loaded from the checkout, not the image: {from_checkout[:5]}"
    from_image = {path.relative_to(app_dir).parts[0] for path in loaded
                  if path.is_relative_to(app_dir)}
    # The same load in the checkout: every top-level directory it loads code from, and
    # every template directory the settings name, must be in the image.
    result = subprocess.run(
        [sys.executable, "-c", IMAGE_LOAD], cwd=ROOT, env=environment,
        input=json.dumps(checkout_templates()), capture_output=True, text=True, check=True,
    )
    needed = {Path(name).relative_to(ROOT).parts[0]
              for name in json.loads(result.stdout.splitlines()[-1])
              if Path(name).is_relative_to(ROOT) and not Path(name).is_relative_to(ROOT / ".venv")}
    needed |= {Path(directory).relative_to(settings.BASE_DIR).parts[0]
               for template in settings.TEMPLATES for directory in template["DIRS"]}
    needed |= {Path(directory).relative_to(settings.BASE_DIR).parts[0]
               for directory in getattr(settings, "STATICFILES_DIRS", [])}
    missing = sorted(name for name in needed
                     if not (app_dir / name).exists())
    assert not missing, f"the Dockerfile does not copy {missing}"
    assert from_image >= needed - {"templates"}
    for app in settings.INSTALLED_APPS:
        if (ROOT / app).is_dir():
            assert (app_dir / app).is_dir(), f"the Dockerfile does not copy the app {app!r}"
    assert (app_dir / "requirements.txt").exists() and (app_dir / "manage.py").exists()


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


PLAIN_VALUE = re.compile(r"[A-Za-z0-9_.:/@,+=%-]*")


def test_env_example_values_read_the_same_in_the_shell_and_systemd():
    """.env.example is read by docker compose, systemd (EnvironmentFile=) and the shell
    (`set -a; . file`): every value it sets, and the quoted example its header gives, is
    one they all read alike, plain or single-quoted, as its header says to write them."""
    text = (ROOT / ".env.example").read_text()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, separator, value = line.partition("=")
            assert separator and re.fullmatch(r"[A-Z][A-Z0-9_]*", name), line
            assert PLAIN_VALUE.fullmatch(value) or re.fullmatch(r"'[^']*'", value), line
    example = re.search(r"^#\s+(DJANGO_EMAIL_HOST_PASSWORD='[^']*')$", text, re.MULTILINE)
    assert example, "the header's quoted example is gone"
    shell = subprocess.run(
        ["bash", "-c",
         f"set -a; {example.group(1)}; set +a; printf %s \"$DJANGO_EMAIL_HOST_PASSWORD\""],
        capture_output=True, text=True, check=True,
    )
    # What systemd reads from a single-quoted value: the text between the quotes.
    assert shell.stdout == example.group(1).partition("=")[2].strip("'") == "pa$word&#1"


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
    (image_command,) = [json.loads(arguments) for instruction, arguments in dockerfile_lines()
                        if instruction == "CMD"]
    assert image_command[0] == "gunicorn"
    server = subprocess.Popen(
        [sys.executable, "-m", *image_command],
        cwd=ROOT, env={**environment, "WEB_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "1"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
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


def gunicorn_config(**environment: str) -> dict[str, str]:
    """gunicorn's resolved settings (`--print-config`) for the project's gunicorn.conf.py,
    with `environment` on top of a production one."""
    env = {**os.environ, **production_environment(), **environment}
    for name in ("WEB_BIND", "FORWARDED_ALLOW_IPS", "WEB_CONCURRENCY"):
        if name not in environment:
            env.pop(name, None)
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "springhook.wsgi", "--print-config"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    )
    config = {}
    for line in result.stdout.splitlines():
        name, separator, value = line.partition(" = ")
        if separator:
            config[name.strip()] = value.strip()
    return config


def test_gunicorn_listens_on_loopback_and_trusts_only_loopback_by_default():
    config = gunicorn_config()
    assert config["bind"] == "['127.0.0.1:8000']"
    assert config["forwarded_allow_ips"] == "['127.0.0.1', '::1']"
    assert config["workers"] == "1"  # what .env.example says unset gives
    assert "# WEB_CONCURRENCY=1\n" in (ROOT / ".env.example").read_text()
    assert "LogfmtFormatter" in config["logconfig_dict"]
    socket_config = gunicorn_config(WEB_BIND="unix:/run/springhook/web.sock")
    assert socket_config["bind"] == "['unix:/run/springhook/web.sock']"


def test_compose_publishes_only_the_proxy_which_web_alone_trusts(compose):
    services = compose["services"]
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"proxy"}
    proxy_address = services["proxy"]["networks"]["edge"]["ipv4_address"]
    (subnet,) = compose["networks"]["edge"]["ipam"]["config"]
    assert ipaddress.ip_address(proxy_address) in ipaddress.ip_network(subnet["subnet"])
    web = services["web"]
    assert "edge" in web["networks"]
    trusted = web["environment"]["FORWARDED_ALLOW_IPS"].split(",")
    assert set(trusted) == {"127.0.0.1", "::1", proxy_address}
    assert [name for name, service in services.items()
            if "edge" in (service.get("networks") or [])] == ["proxy", "web"]
    # The image's command, and it listens where the proxy sends: web:8000.
    assert as_argv(web["command"]) == ["gunicorn", "springhook.wsgi"]
    image_env = dict(assignment.partition("=")[::2] for instruction, arguments
                     in dockerfile_lines() if instruction == "ENV"
                     for assignment in shlex.split(arguments))
    assert image_env["WEB_BIND"] == "0.0.0.0:8000"
    caddyfile = (ROOT / "deploy" / "caddy" / "Caddyfile").read_text()
    assert "reverse_proxy web:8000" in caddyfile
    assert "./deploy/caddy/Caddyfile:/etc/caddy/Caddyfile:ro" in services["proxy"]["volumes"]


def test_nginx_example_passes_host_and_scheme_to_the_loopback_gunicorn():
    conf = (ROOT / "deploy" / "nginx" / "springhook.conf").read_text()
    assert "proxy_pass http://127.0.0.1:8000;" in conf
    assert "proxy_set_header Host $host;" in conf
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in conf


@pytest.mark.skipif(shutil.which("nginx") is None or shutil.which("openssl") is None,
                    reason="needs nginx and openssl (apt-get install nginx)")
def test_the_nginx_example_serves_the_site_over_https_with_host_and_scheme(tmp_path):
    """deploy/nginx/springhook.conf as written, but for its ports and a self-signed
    certificate, in front of gunicorn as the bare units run it: HTTPS requests reach
    Django as HTTPS (whatever X-Forwarded-Proto the client sent) with their Host, plain
    HTTP is redirected by nginx."""
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=webhooks.example.com", "-keyout", str(tmp_path / "key.pem"),
         "-out", str(tmp_path / "cert.pem")], check=True, capture_output=True,
    )
    web_port, http_port, https_port = free_port(), free_port(), free_port()
    site = (ROOT / "deploy" / "nginx" / "springhook.conf").read_text()
    for old, new in [
        ("/etc/letsencrypt/live/webhooks.example.com/fullchain.pem", str(tmp_path / "cert.pem")),
        ("/etc/letsencrypt/live/webhooks.example.com/privkey.pem", str(tmp_path / "key.pem")),
        ("listen 80;", f"listen 127.0.0.1:{http_port};"),
        ("listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;"),
        ("proxy_pass http://127.0.0.1:8000;", f"proxy_pass http://127.0.0.1:{web_port};"),
    ]:
        assert site.count(old) == 1, old
        site = site.replace(old, new)
    site = "\n".join(line for line in site.splitlines() if "listen [::]" not in line)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid; error_log {tmp_path}/nginx-error.log; events {{}}\n"
        f"http {{ access_log off; client_body_temp_path {tmp_path}; proxy_temp_path {tmp_path};"
        f" fastcgi_temp_path {tmp_path}; uwsgi_temp_path {tmp_path}; scgi_temp_path {tmp_path};"
        f"\n{site}\n}}\n"
    )
    environment = {
        **os.environ, **production_environment(),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "DJANGO_STATIC_ROOT": str(tmp_path / "static"),
        "DJANGO_ALLOWED_HOSTS": "webhooks.example.com",
        "WEB_BIND": f"127.0.0.1:{web_port}",
    }
    environment.pop("FORWARDED_ALLOW_IPS", None)
    for command in (["collectstatic", "--no-input"], ["migrate", "--no-input"]):
        subprocess.run([sys.executable, "manage.py", *command, "-v", "0"],
                       cwd=ROOT, env=environment, check=True)
    web = subprocess.Popen([sys.executable, "-m", "gunicorn", "springhook.wsgi"], cwd=ROOT,
                           env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    nginx = subprocess.Popen(["nginx", "-c", str(tmp_path / "nginx.conf"), "-g", "daemon off;"],
                             stderr=subprocess.PIPE, text=True)
    context = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
    context.check_hostname = False

    def https_get(path: str, host: str, **headers: str) -> http.client.HTTPResponse:
        connection = http.client.HTTPSConnection("127.0.0.1", https_port, timeout=10,
                                                 context=context)
        connection.request("GET", path, headers={"Host": host, **headers})
        response = connection.getresponse()
        response.body = response.read()
        connection.close()
        return response

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                page = https_get("/admin/login/", "webhooks.example.com",
                                 **{"X-Forwarded-Proto": "http"})
                if page.status != 502:  # nginx is up before gunicorn
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline and nginx.poll() is None and web.poll() is None
            time.sleep(0.3)
        # Served as HTTPS: no redirect, HSTS, the secure cookie for the login form.
        assert page.status == 200, page.body[:500]
        assert "max-age=31536000" in page.getheader("Strict-Transport-Security")
        assert "Secure" in page.getheader("Set-Cookie")
        # The Host goes through as the client sent it: Django refuses a name it does not serve.
        assert https_get("/admin/login/", "scanner.invalid").status == 400
        plain = http_get(http_port, "/admin/login/", {"Host": "webhooks.example.com"})
        assert plain.status == 301
        assert plain.getheader("Location") == "https://webhooks.example.com/admin/login/"
    finally:
        nginx.terminate()
        web.terminate()
        nginx.wait(timeout=30)
        web.wait(timeout=30)


@pytest.mark.skipif(shutil.which("caddy") is None, reason="needs caddy (apt-get install caddy)")
def test_the_caddyfile_proxies_the_site_to_web():
    result = subprocess.run(
        ["caddy", "adapt", "--config", str(ROOT / "deploy" / "caddy" / "Caddyfile"),
         "--adapter", "caddyfile"],
        env={**os.environ, "SITE_ADDRESS": "webhooks.example.com"},
        capture_output=True, text=True, check=True,
    )
    (server,) = json.loads(result.stdout)["apps"]["http"]["servers"].values()
    (route,) = server["routes"]
    assert route["match"] == [{"host": ["webhooks.example.com"]}]
    assert '"dial":"web:8000"' in json.dumps(route, separators=(",", ":"))
    assert server["listen"] == [":443"]


def test_a_forwarded_scheme_counts_only_from_the_trusted_proxy(tmp_path):
    """gunicorn with production settings, trusting only another address: a client that
    reaches it directly and says X-Forwarded-Proto: https is still plain HTTP, and is
    redirected; trusting loopback, the same request is served."""
    environment = {
        **os.environ,
        **production_environment(),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "DJANGO_STATIC_ROOT": str(tmp_path / "static"),
        "DJANGO_ALLOWED_HOSTS": "webhooks.example.com",
    }
    subprocess.run([sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
                   cwd=ROOT, env=environment, check=True)
    answers = {}
    for trusted in ("192.0.2.10", "127.0.0.1"):
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "springhook.wsgi"], cwd=ROOT,
            env={**environment, "WEB_BIND": f"127.0.0.1:{port}", "FORWARDED_ALLOW_IPS": trusted},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    answer = http_get(port, "/trainings", {
                        "Host": "webhooks.example.com", "X-Forwarded-Proto": "https"})
                    break
                except OSError:
                    assert time.monotonic() < deadline and server.poll() is None
                    time.sleep(0.2)
            answers[trusted] = (answer.status, answer.getheader("Location"))
        finally:
            server.terminate()
            server.wait(timeout=30)
    assert answers == {
        "192.0.2.10": (301, "https://webhooks.example.com/trainings"),
        "127.0.0.1": (401, None),  # served: it asks for the API key
    }


UNITS = ROOT / "deploy" / "systemd"


# Keys that systemd reads as lists: set more than once, their values add up.
LIST_KEYS = {"SystemCallFilter"}


def unit_file(path: Path) -> dict[str, dict[str, str]]:
    """The sections and settings of a systemd unit file (one value per key, but for the
    list keys, whose lines are joined with a newline)."""
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
        if key in LIST_KEYS and key in current:
            current[key] += "\n" + value
            continue
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
    assert set(units) == {"springhook-web", "springhook-worker", "springhook-beat",
                          "springhook-dispatcher"}
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
        if role == "dispatcher":  # no broker: not in the compose file
            assert argv == ["python", "manage.py", "run_dispatcher"]
            continue
        # The same command as the compose file's, but for where beat keeps its schedule.
        assert argv[:len(compose_commands[role]) - 2] == compose_commands[role][:-2] or (
            argv == compose_commands[role]
        ), (argv, compose_commands[role])
    worker_stop = float(units["springhook-worker"]["Service"]["TimeoutStopSec"])
    assert worker_stop > settings.WEBHOOK_CONNECT_TIMEOUT + settings.WEBHOOK_TIMEOUT
    beat = units["springhook-beat"]["Service"]
    schedule = Path(shlex.split(beat["ExecStart"])[shlex.split(beat["ExecStart"]).index(
        "--schedule") + 1])
    assert schedule.parent == Path("/var/lib") / beat["StateDirectory"]
    assert str(schedule.parent) in doc, "the docs do not make beat's schedule directory"


# What `systemd-analyze security` scores (8.8 "EXPOSED" without them; 1.3 with them).
HARDENING = {
    "NoNewPrivileges": "yes",
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "PrivateUsers": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "ProtectClock": "yes",
    "ProtectHostname": "yes",
    "ProtectProc": "invisible",
    "ProcSubset": "pid",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "RestrictNamespaces": "yes",
    "RestrictRealtime": "yes",
    "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes",
    "RemoveIPC": "yes",
    "SystemCallArchitectures": "native",
    "SystemCallFilter": "@system-service\n~@privileged @resources",
    "UMask": "0077",
}


@pytest.mark.parametrize("path", sorted(UNITS.glob("*.service")), ids=lambda path: path.stem)
def test_every_unit_is_hardened_limited_and_ordered_after_its_servers(path):
    unit = unit_file(path)
    service = unit["Service"]
    for key, value in HARDENING.items():
        assert service.get(key) == value, f"{path.name}: {key}={service.get(key)!r}"
    assert service["MemoryMax"].rstrip("MG").isdigit() and int(service["TasksMax"]) > 0
    # Only the state directory is writable, and only by the unit that needs it.
    writable = service.get("ReadWritePaths")
    if "StateDirectory" in service:
        assert writable == f"/var/lib/{service['StateDirectory']}"
    else:
        assert writable is None
    # Ordered after the PostgreSQL cluster itself (Debian's postgresql.service is only the
    # umbrella that starts clusters), and wanting it, so that a start pulls it in.
    for key in ("Wants", "After"):
        assert "postgresql@15-main.service" in unit["Unit"][key].split(), (path.name, key)
    uses_redis = "dispatcher" not in path.name
    for key in ("Wants", "After"):
        assert ("redis-server.service" in unit["Unit"][key].split()) == uses_redis


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
@pytest.mark.parametrize("path", sorted(UNITS.glob("*.service")), ids=lambda path: path.stem)
def test_systemd_analyze_scores_every_unit_ok(path):
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--threshold=20", str(path)],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    score = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", result.stdout)
    assert score and float(score.group(1)) <= 2.0 and score.group(2) == "OK", result.stdout


def test_the_bare_steps_name_the_files_of_the_repository():
    doc = bare_section()
    for relative in re.findall(r"/srv/springhook/app/([\w./*-]+)", doc):
        assert list(ROOT.glob(relative)), f"docs/operations.md names {relative}, not in the repo"
    for command in re.findall(r"manage\.py (\w+)", doc):
        assert command in get_commands(), f"no management command {command!r}"
    assert "venv/" in (ROOT / ".gitignore").read_text().split()
