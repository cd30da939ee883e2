"""Shared fixtures. The database is whatever DATABASE_URL names (SQLite by default)."""

from pathlib import Path

import pytest
from django.db import connection

from catalog.models import Institute, Training

# The SQLite test database is a file there (see settings).
(Path(__file__).resolve().parents[1] / "var").mkdir(exist_ok=True)


def pytest_collection_modifyitems(config, items):
    # Tests marked `postgres` prove behaviour that only PostgreSQL has (row locks, many
    # concurrent writers); on SQLite they are reported as skipped, never silently passed.
    from django.conf import settings

    engine = settings.DATABASES["default"]["ENGINE"]
    if engine != "django.db.backends.postgresql":
        skip = pytest.mark.skip(reason="needs PostgreSQL: run with DATABASE_URL=postgres://...")
        for item in items:
            if "postgres" in item.keywords:
                item.add_marker(skip)


@pytest.fixture
def institute(db) -> Institute:
    return Institute.objects.create(name="Academy of Testing")


@pytest.fixture
def training(institute) -> Training:
    return Training.objects.create(institute=institute, reference="T-1", name="Pytest basics")


@pytest.fixture
def on_postgres() -> bool:
    return connection.vendor == "postgresql"


@pytest.fixture
def partner():
    from tests.support.partner import Partner

    server = Partner().start()
    yield server
    server.stop()


@pytest.fixture
def fast_delivery(settings):
    """Settings for delivery tests: no bundle delay, loopback partners, short timeouts."""
    settings.WEBHOOK_BUNDLE_DELAY = 0
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = True
    settings.WEBHOOK_TIMEOUT = 2
    settings.WEBHOOK_CONNECT_TIMEOUT = 1
    settings.API_BASE_URL = "https://api.example.test"
    return settings
