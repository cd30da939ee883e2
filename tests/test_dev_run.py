"""`python3 dev.py run` as a new user meets it: the whole loop, from an admin edit to the
demo partner's mirror, and Ctrl-C stopping everything.

It runs the real dev.py on free ports with its own SQLite database and var/ directory, so
it does not touch the checkout's db.sqlite3 or a `dev.py run` someone has open.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.support.admin_browser import AdminBrowser

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def wait_for(predicate, *, timeout: float, what: str, log: Path, process=None):
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if process is not None and process.poll() is not None:
            pytest.fail(f"dev.py exited ({process.returncode}) before {what}:\n{log.read_text()}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} after {timeout:.0f}s; dev.py said:\n{log.read_text()}")
        time.sleep(0.2)


def mirror(partner_port: int) -> dict:
    try:
        return requests.get(f"http://127.0.0.1:{partner_port}/mirror", timeout=5).json()
    except requests.RequestException:
        return {}


@pytest.mark.slow
def test_an_admin_edit_reaches_the_demo_partner_and_ctrl_c_stops_everything(tmp_path):
    server_port, partner_port = free_port(), free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("WEBHOOK_", "API_BASE_URL", "PARTNER_"))
    }
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        DEV_VAR_DIR=str(tmp_path / "var"),
        SPRINGHOOK_PORT=str(server_port),
        PARTNER_PORT=str(partner_port),
    )
    # A kept login whose random password starts with "-" (token_urlsafe makes those).
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "admin-login.txt").write_text("admin -x5TdsVb_3nQ2rLw\n")
    log = tmp_path / "dev-run.log"
    with log.open("wb") as output:
        dev_run = subprocess.Popen(
            [sys.executable, "dev.py", "run"], cwd=ROOT, env=env, stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        banner = wait_for(
            lambda: re.search(r"login: (\S+) / (\S+)", log.read_text()),
            timeout=180, what="'Springhook is running' banner", log=log, process=dev_run,
        )
        username, password = banner.groups()
        assert (username, password) == ("admin", "-x5TdsVb_3nQ2rLw")
        # The demo partner starts empty and reads the whole demo catalogue first.
        trainings = wait_for(
            lambda: len(mirror(partner_port).get("trainings", {})) == 5
            and mirror(partner_port)["trainings"],
            timeout=60, what="demo catalogue in the partner's mirror", log=log,
        )
        training_id = min(trainings, key=int)
        new_name = f"Renamed in the admin at {time.time():.0f}"

        browser = AdminBrowser(f"http://127.0.0.1:{server_port}")
        browser.login(username, password)
        browser.change(
            f"/admin/catalog/training/{training_id}/change/", "training_form", name=new_name
        )

        # The bundle delay is 2 s and the dispatcher ticks every second.
        wait_for(
            lambda: mirror(partner_port)["trainings"][training_id][2] == new_name,
            timeout=30, what=f"new name of training {training_id} in the mirror", log=log,
        )
        applied = rf"^\[partner\] .* applied update training {training_id} \(name='{new_name}'\)"
        wait_for(
            lambda: re.search(applied, log.read_text(), re.MULTILINE),
            timeout=10, what="[partner] log line of the change", log=log,
        )
        assert re.search(r"^\[dispatcher\] .* status=204 ", log.read_text(), re.MULTILINE)
    finally:
        # Ctrl-C in a terminal sends SIGINT to dev.py (its children have their own session).
        dev_run.send_signal(signal.SIGINT)
        try:
            code = dev_run.wait(timeout=60)
        except subprocess.TimeoutExpired:
            dev_run.kill()
            raise

    assert code == 0, log.read_text()
    text = log.read_text()
    assert text.rstrip().endswith("Stopped."), text
    assert "killed" not in text
    assert "Traceback" not in text, text
    assert not listening(server_port) and not listening(partner_port)
