"""Typed reads of the environment.

Every setting that comes from the environment goes through one of these functions, so a
wrong value stops startup with a message that names the variable, instead of surfacing
later as a confusing error inside a worker.
"""

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from core import EXIT_CONFIGURATION

__all__ = ["EXIT_CONFIGURATION", "ConfigurationError", "configuration_errors_exit"]


class ConfigurationError(ImproperlyConfigured):
    """A variable of the environment is missing or not valid; the message names it."""


@contextmanager
def configuration_errors_exit(*, status: int = EXIT_CONFIGURATION) -> Iterator[None]:
    """Turn a ConfigurationError into one line on stderr and an exit with `status`.

    The message says all there is to say: a traceback would only bury it.
    """
    try:
        yield
    except ConfigurationError as error:
        print(f"springhook: configuration error: {error}", file=sys.stderr, flush=True)
        raise SystemExit(status) from None


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigurationError(
            f"{name} must be a whole number, got {raw!r}"
        ) from None
    if minimum is not None and value < minimum:
        raise ConfigurationError(f"{name} must be at least {minimum}, got {value}")
    return value


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise ConfigurationError(f"{name} must be a number of seconds, got {raw!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ConfigurationError(f"{name} must be a finite number, got {raw!r}")
    if minimum is not None and value < minimum:
        raise ConfigurationError(f"{name} must be at least {minimum}, got {value}")
    return value


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"{name} must be 1 or 0 (true/false), got {raw!r}")


def env_seconds_list(name: str, default: str) -> tuple[float, ...]:
    """A comma-separated list of positive numbers of seconds, e.g. ``10,30,60``."""
    raw = os.environ.get(name) or default
    parts = [part.strip() for part in raw.split(",")]
    try:
        values = tuple(float(part) for part in parts)
    except ValueError:
        raise ConfigurationError(
            f"{name} must be comma-separated seconds like '10,30,60', got {raw!r}"
        ) from None
    if not values or any(value <= 0 or value != value for value in values):
        raise ConfigurationError(f"{name} must list positive seconds, got {raw!r}")
    return values


def env_url(name: str, default: str) -> str:
    """An absolute http(s) URL with a host and nothing after its path, without a final /."""
    raw = os.environ.get(name)
    value = default if raw is None or raw.strip() == "" else raw.strip()
    try:
        parts = urlsplit(value)
        port_valid = parts.port is None or parts.port > 0  # ValueError when not a number
    except ValueError:
        parts, port_valid = None, False
    if (
        parts is None
        or not port_valid
        or any(char.isspace() for char in value)
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.query
        or parts.fragment
        or parts.username is not None
    ):
        raise ConfigurationError(
            f"{name} must be an http:// or https:// URL with a host and no query, fragment"
            f" or credentials, like https://api.example.com, got {value!r}"
        )
    return value.rstrip("/")
