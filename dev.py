#!/usr/bin/env python3
"""The two commands of a fresh clone: `python3 dev.py run` and `python3 dev.py test`.

Both create a virtual environment in .venv and install the pinned requirements into it
the first time (and again whenever a requirements file changes), so that a machine with
only Python 3.11+ needs nothing else. Only the standard library is used here.

`run` starts the whole loop: the server (SPRINGHOOK_PORT, default 8000), the embedded
dispatcher, and the reference partner receiver (PARTNER_PORT, default 9000) with a demo
webhook pointing at it. Its state (admin login, the partner's config and mirror) lives in
var/ (DEV_VAR_DIR). Ctrl-C stops everything.
"""

import hashlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
# Local state of `dev.py run`: the admin login, the demo partner's config and mirror.
VAR = Path(os.environ.get("DEV_VAR_DIR") or ROOT / "var")
PYTHON = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
REQUIREMENTS = ROOT / "requirements-dev.txt"


def ensure_environment() -> None:
    """Create .venv and install the requirements unless they are installed already."""
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py may be started by an old python3
        sys.exit(f"Springhook needs Python 3.11 or newer; this is {sys.version.split()[0]}.")
    if not PYTHON.exists():
        print("Creating the virtual environment in .venv …", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = hashlib.sha256(
        b"".join(path.read_bytes() for path in sorted(ROOT.glob("requirements*.txt")))
    ).hexdigest()
    stamp = VENV / ".requirements-installed"
    if stamp.exists() and stamp.read_text() == digest:
        return
    print("Installing requirements …", flush=True)
    subprocess.run(
        [str(PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "-r", str(REQUIREMENTS)],
        check=True,
    )
    stamp.write_text(digest)


def manage(*args: str, env: dict[str, str] | None = None) -> None:
    subprocess.run([str(PYTHON), "manage.py", *args], cwd=ROOT, check=True, env=env)


def admin_login(env: dict[str, str]) -> tuple[str, str]:
    """The demo admin's login: made once with a random password, kept in var/."""
    VAR.mkdir(parents=True, exist_ok=True)
    login_file = VAR / "admin-login.txt"
    if login_file.exists():
        username, password = login_file.read_text().split()
    else:
        username, password = "admin", secrets.token_urlsafe(12)
    # "--password=…" in one argument: a random password may start with "-".
    manage("demo_admin", f"--username={username}", f"--password={password}", env=env)
    login_file.write_text(f"{username} {password}\n")
    return username, password


def run() -> int:
    """Migrate, load the demo, then run the whole loop until Ctrl-C: the server, the
    dispatcher, and a demo partner (the reference receiver) with a webhook pointing at it."""
    # Ctrl-C must work even when started from a shell that ignores SIGINT (a `&` job).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    ensure_environment()
    server_port = int(os.environ.get("SPRINGHOOK_PORT", "8000"))
    partner_port = int(os.environ.get("PARTNER_PORT", "9000"))
    for name, port in (("SPRINGHOOK_PORT", server_port), ("PARTNER_PORT", partner_port)):
        if port_open(port):
            print(f"Port {port} is in use (another `dev.py run`?). Stop that, or choose "
                  f"another port: {name}=<port> python3 dev.py run", file=sys.stderr)
            return 1
    base_url = f"http://127.0.0.1:{server_port}"
    env = {
        **os.environ,
        # The demo partner listens on 127.0.0.1: allow loopback URLs on this machine only.
        "WEBHOOK_ALLOW_PRIVATE_URLS": os.environ.get("WEBHOOK_ALLOW_PRIVATE_URLS", "1"),
        # Edits reach the demo partner within seconds (the production default is 30 s).
        "WEBHOOK_BUNDLE_DELAY": os.environ.get("WEBHOOK_BUNDLE_DELAY", "2"),
        "API_BASE_URL": os.environ.get("API_BASE_URL", base_url),
        "PYTHONUNBUFFERED": "1",
    }
    # The demo runs the embedded dispatcher, which refuses to start next to a broker.
    env.pop("CELERY_BROKER_URL", None)
    manage("migrate", "--no-input", "-v", "0", env=env)
    manage("seed_demo", env=env)
    username, password = admin_login(env)
    mirror = VAR / "partner-mirror.sqlite3"
    config = VAR / "demo-partner.json"
    manage(
        "demo_partner", "--url", f"http://127.0.0.1:{partner_port}/", "--config", str(config),
        # A partner starting with an empty mirror re-reads the whole catalogue.
        *([] if mirror.exists() else ["--resend"]),
        env=env,
    )
    partner = json.loads(config.read_text())
    partner_env = {
        **env,
        # In the environment rather than on the command line, where `ps` would show them.
        "PARTNER_HOST": "127.0.0.1",
        "PARTNER_PORT": str(partner_port),
        "PARTNER_SECRET": partner["secret"],
        "PARTNER_API_KEY": partner["api_key"],
        "PARTNER_DB": str(mirror),
    }

    processes: dict[str, subprocess.Popen] = {}
    try:
        # The partner first, so that the dispatcher's first batch finds it listening.
        processes["partner"] = start("partner", [str(ROOT / "examples/partner/receiver.py")],
                                     partner_env)
        processes["server"] = start(
            "server", ["manage.py", "runserver", f"127.0.0.1:{server_port}", "--noreload"], env
        )
        for name, port in (("partner", partner_port), ("server", server_port)):
            wait_listening(processes[name], port)
        processes["dispatcher"] = start("dispatcher", ["manage.py", "run_dispatcher"], env)
    except (KeyboardInterrupt, RuntimeError) as error:
        if isinstance(error, RuntimeError):
            print(error, file=sys.stderr)
        stop(processes)
        return 1
    say(
        "\nSpringhook is running, with a demo partner.\n"
        f"  Admin          {base_url}/admin/   login: {username} / {password}\n"
        f"  Trainings API  {base_url}/trainings/1   header X-API-Key: {partner['api_key']}\n"
        f"  OpenAPI        {base_url}/openapi.json\n"
        f"  Partner        http://127.0.0.1:{partner_port}/mirror   (its copy of the catalogue)\n"
        "Edit a training in the admin: a few seconds later a line\n"
        "  [partner] ... applied update training <id> (name='...')\n"
        "shows the partner received and applied it. Press Ctrl-C to stop everything.\n"
    )
    return supervise(processes)


# Children's output lines are printed whole, one at a time, each prefixed with its process.
_print_lock = threading.Lock()
_NAME_WIDTH = len("[dispatcher]")


def say(text: str) -> None:
    with _print_lock:
        print(text, flush=True)


def start(name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
    """Start a child whose output is relayed line by line as `[name] line`."""
    process = subprocess.Popen(
        [str(PYTHON), *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        # Its own session: Ctrl-C reaches only dev.py, which stops the children in order
        # instead of each one getting the signal in the middle of its startup.
        start_new_session=True,
    )
    prefix = f"[{name}]".ljust(_NAME_WIDTH)

    def relay() -> None:
        for line in iter(process.stdout.readline, b""):
            say(f"{prefix} {line.decode(errors='replace').rstrip()}")

    process.relay = threading.Thread(target=relay, name=f"relay-{name}", daemon=True)
    process.relay.start()
    return process


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def wait_listening(process: subprocess.Popen, port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not port_open(port):
        if process.poll() is not None:
            raise RuntimeError(f"a process stopped at startup (exit {process.returncode})")
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing listens on port {port} after {timeout:.0f}s")
        time.sleep(0.2)


def supervise(processes: dict[str, subprocess.Popen]) -> int:
    """Wait until one process ends, or Ctrl-C (SIGINT, SIGTERM, SIGHUP); then stop them all."""
    for signum in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if signum is not None:
            signal.signal(signum, _interrupt)
    code = 0
    try:
        while True:
            for name, process in processes.items():
                if process.poll() is not None:
                    say(f"{name} stopped (exit {process.returncode}); stopping the rest.")
                    code = process.returncode or 1
                    raise KeyboardInterrupt
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    stop(processes)
    return code


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def stop(processes: dict[str, subprocess.Popen]) -> None:
    """Stop each process, the dispatcher first; kill those that do not stop in time."""
    # A second Ctrl-C while stopping must not leave the children running.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    order = sorted(processes, key=lambda name: name != "dispatcher")
    for name in order:
        if processes[name].poll() is None:
            # SIGTERM, not SIGINT: all three stop cleanly on it, and a child started from a
            # shell that ignores SIGINT would ignore that.
            processes[name].terminate()
    for name in order:
        process = processes[name]
        try:
            # The dispatcher finishes a send in progress: up to the webhook timeout.
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            say(f"{name} did not stop in time; killed.")
            process.kill()
            process.wait()
        process.relay.join(timeout=2)  # print its last lines before saying it stopped
    say("Stopped.")


def test(args: list[str]) -> int:
    ensure_environment()
    result = subprocess.run([str(PYTHON), "-m", "pytest", *args], cwd=ROOT)
    return result.returncode


def main() -> int:
    command, *args = sys.argv[1:] or ["help"]
    if command == "run":
        return run()
    if command == "test":
        return test(args)
    print(__doc__.strip())
    print("\nUsage: python3 dev.py run | python3 dev.py test [pytest arguments]")
    return 0 if command in ("help", "-h", "--help") else 2


if __name__ == "__main__":
    sys.exit(main())
