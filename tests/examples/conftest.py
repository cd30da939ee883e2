"""Fixtures for the reference partner receiver tests.

No Django here: run with ``pytest tests/examples -p no:django``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from partner_harness import FakeTrainingsApi, ReceiverProcess, load_receiver_module


@pytest.fixture(scope="session")
def receiver_module() -> ModuleType:
    return load_receiver_module()


@pytest.fixture
def fake_api() -> Iterator[FakeTrainingsApi]:
    api = FakeTrainingsApi().start()
    yield api
    api.stop()


@pytest.fixture
def receiver(tmp_path: Path, fake_api: FakeTrainingsApi) -> Iterator[ReceiverProcess]:
    process = ReceiverProcess(tmp_path / "mirror.sqlite3", tmp_path / "receiver.log", fake_api)
    yield process.start()
    process.stop()
