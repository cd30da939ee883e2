#!/usr/bin/env python3
"""The two commands of a fresh clone: `python3 dev.py run` and `python3 dev.py test`.

Both create a virtual environment in .venv and install the pinned requirements into it
the first time (and again whenever a requirements file changes), so that a machine with
only Python 3.11+ needs nothing else. Only the standard library is used here.
"""

import hashlib
import os
import secrets
import signal
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
VAR = ROOT / "var"
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
    VAR.mkdir(exist_ok=True)
    login_file = VAR / "admin-login.txt"
    if login_file.exists():
        username, password = login_file.read_text().split()
    else:
        username, password = "admin", secrets.token_urlsafe(12)
    manage("demo_admin", "--username", username, "--password", password, env=env)
    login_file.write_text(f"{username} {password}\n")
    return username, password


def run() -> int:
    ensure_environment()
    env = {
        **os.environ,
        # The demo partner listens on 127.0.0.1: allow loopback URLs on this machine only.
        "WEBHOOK_ALLOW_PRIVATE_URLS": os.environ.get("WEBHOOK_ALLOW_PRIVATE_URLS", "1"),
        "WEBHOOK_BUNDLE_DELAY": os.environ.get("WEBHOOK_BUNDLE_DELAY", "2"),
        "API_BASE_URL": os.environ.get("API_BASE_URL", "http://127.0.0.1:8000"),
        "PYTHONUNBUFFERED": "1",
    }
    manage("migrate", "--no-input", "-v", "0", env=env)
    manage("seed_demo", env=env)
    username, password = admin_login(env)

    processes = {
        "server": subprocess.Popen(
            [str(PYTHON), "manage.py", "runserver", "127.0.0.1:8000", "--noreload"],
            cwd=ROOT,
            env=env,
        ),
    }
    print(
        "\nSpringhook is running.\n"
        "  Admin:  http://127.0.0.1:8000/admin/\n"
        f"  Login:  {username} / {password}\n"
        "Press Ctrl-C to stop.\n",
        flush=True,
    )
    return supervise(processes)


def supervise(processes: dict[str, subprocess.Popen]) -> int:
    """Wait until one process ends or Ctrl-C; then stop them all."""
    code = 0
    try:
        while True:
            for name, process in processes.items():
                if process.poll() is not None:
                    print(f"{name} stopped (exit {process.returncode}); stopping the rest.")
                    code = process.returncode or 1
                    raise KeyboardInterrupt
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    for process in processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    for process in processes.values():
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
    return code


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
