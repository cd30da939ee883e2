"""The bench's own database and environment, set before Django starts.

The bench always works in a database of its own (``springhook_bench`` by default, or
BENCH_DATABASE_NAME) on the PostgreSQL server that DATABASE_URL names (default
``postgres://root@127.0.0.1:5432/``): it drops and re-creates that database at start, so
it must never be a database anything else uses. Any other engine is refused: the
figures are about production's parts.
"""

from __future__ import annotations

import os
import re
import sys
from urllib.parse import urlsplit, urlunsplit

DEFAULT_SERVER = "postgres://root@127.0.0.1:5432/"
DEFAULT_REDIS = "redis://127.0.0.1:6379/11"


class BenchRefused(SystemExit):
    pass


def bench_database_url() -> str:
    """DATABASE_URL's server with the bench's own database name."""
    raw = os.environ.get("DATABASE_URL") or DEFAULT_SERVER
    parts = urlsplit(raw)
    if parts.scheme not in ("postgres", "postgresql", "pgsql"):
        raise BenchRefused(
            f"python -m bench measures PostgreSQL only; DATABASE_URL is {parts.scheme!r}. "
            f"Unset it (the bench then uses {DEFAULT_SERVER}) or point it at a PostgreSQL "
            f"server: the bench creates its own database there."
        )
    name = os.environ.get("BENCH_DATABASE_NAME", "springhook_bench")
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))


def child_environment(database_url: str, **overrides: str) -> dict[str, str]:
    """The environment of the bench and of every process it starts."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_SETTINGS_MODULE": "springhook.settings",
        # DEBUG keeps every query in memory: that would be measured as a leak.
        "DJANGO_DEBUG": "0",
        "WEBHOOK_ALLOW_PRIVATE_URLS": "1",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(overrides)
    return env


def database_recreate(database_url: str) -> None:
    """Drop and create the bench database (connecting to the server's `postgres` DB).

    The one place any bench module creates or drops a database: the name is checked, and
    quoted as an identifier, never formatted into the SQL."""
    import psycopg2
    from psycopg2 import sql

    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    if name in ("", "postgres", "template0", "template1", "test"):
        raise BenchRefused(f"refusing to drop database {name!r}: choose BENCH_DATABASE_NAME")
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        raise BenchRefused(f"unexpected bench database name {name!r}: letters, digits and _")
    admin_url = urlunsplit((parts.scheme, parts.netloc, "/postgres", parts.query, ""))
    connection = psycopg2.connect(admin_url.replace("postgres://", "postgresql://", 1))
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    finally:
        connection.close()


def python() -> str:
    return sys.executable


def database_url_named(database_url: str, name: str) -> str:
    """`database_url`'s server with database `name`."""
    parts = urlsplit(database_url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))
