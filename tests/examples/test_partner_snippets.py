"""Every verifying snippet in docs/partners.md that can run here runs as written: the
Python one in this process, the Node one under `node` with the `standardwebhooks` package
from npm, each given a request that Springhook signed (deliveries.signing) and a forged one.

Ruby and PHP are not installed on CI; their snippets are not run. The Node test installs
`standardwebhooks` with npm into a temporary directory: where node or npm (or the registry)
is missing it is skipped, except on CI (CI=1), where it fails.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from deliveries.signing import signature_header
from webhooks.secrets import secret_generate

ROOT = Path(__file__).resolve().parents[2]
PARTNERS = ROOT / "docs" / "partners.md"
NPM_PACKAGE = "standardwebhooks@1.3.0"


def snippet(heading: str, language: str) -> str:
    """The first ```language block after `### heading` in docs/partners.md."""
    text = PARTNERS.read_text(encoding="utf-8")
    section = text[text.index(f"### {heading}"):]
    return re.search(rf"```{language}\n(.*?)```", section, re.DOTALL).group(1)


def signed(secret: str, body: bytes, *, message_id: str = "msg_snippet") -> dict[str, str]:
    timestamp = int(time.time())
    return {
        # Spelled as a framework may hand them over: the snippets must not mind the case.
        "Webhook-Id": message_id,
        "Webhook-Timestamp": str(timestamp),
        "Webhook-Signature": signature_header(
            secrets=[secret], message_id=message_id, timestamp=timestamp, body=body
        ),
        "Content-Type": "application/json",
    }


BODY = b'{"changes":[{"action":"destroy","object":"training","id":7}]}'


def test_the_python_snippet_verifies_a_signed_request_and_refuses_a_forged_one(
    tmp_path, monkeypatch
):
    secret = secret_generate()
    monkeypatch.setenv("WEBHOOK_SECRET", secret)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(snippet("Verifying in Python", "python"), "partners.md", "exec"), namespace)

    assert namespace["receive"](BODY, signed(secret, BODY)) == 204
    stored = [json.loads(line) for line in (tmp_path / "inbox.jsonl").read_text().splitlines()]
    assert stored == [{"id": "msg_snippet", "body": BODY.decode()}]
    assert namespace["receive"](BODY, signed(secret_generate(), BODY)) == 401
    assert namespace["receive"](BODY + b" ", signed(secret, BODY)) == 401
    assert len((tmp_path / "inbox.jsonl").read_text().splitlines()) == 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def node_directory(tmp_path) -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not (node and npm):
        if os.environ.get("CI"):
            pytest.fail("node and npm are needed to test the Node snippet")
        pytest.skip("needs node and npm")
    installed = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--silent", NPM_PACKAGE],
        cwd=tmp_path, capture_output=True, text=True, timeout=180,
    )
    if installed.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"npm install {NPM_PACKAGE} failed: {installed.stderr[-2000:]}")
        pytest.skip(f"npm install {NPM_PACKAGE} failed (no registry?)")
    return tmp_path


def test_the_node_snippet_runs_as_written(node_directory):
    (node_directory / "receiver.mjs").write_text(snippet("Verifying in Node", "javascript"))
    secret = secret_generate()
    port = _free_port()
    process = subprocess.Popen(
        ["node", "receiver.mjs"], cwd=node_directory, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "WEBHOOK_SECRET": secret, "PORT": str(port)},
    )
    try:
        assert process.stdout.readline().strip() == f"listening on port {port}"
        url = f"http://127.0.0.1:{port}/springhook"
        accepted = requests.post(url, data=BODY, headers=signed(secret, BODY), timeout=10)
        assert accepted.status_code == 204
        forged = requests.post(url, data=BODY, headers=signed(secret_generate(), BODY),
                               timeout=10)
        assert forged.status_code == 401
        unsigned = requests.post(url, data=BODY, timeout=10)
        assert unsigned.status_code == 401
    finally:
        process.terminate()
        process.wait(timeout=10)
    stored = (node_directory / "inbox.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in stored] == [{"id": "msg_snippet", "body": BODY.decode()}]
