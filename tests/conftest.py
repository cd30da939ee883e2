"""Shared fixtures. The database is whatever DATABASE_URL names (SQLite by default)."""

import pytest
from django.db import connection

from catalog.models import Institute, Training


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
