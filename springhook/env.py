"""Typed reads of the environment.

Every setting that comes from the environment goes through one of these functions, so a
wrong value stops startup with a message that names the variable, instead of surfacing
later as a confusing error inside a worker.
"""

import os

from django.core.exceptions import ImproperlyConfigured


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(
            f"{name} must be a whole number, got {raw!r}"
        ) from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    return value


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number of seconds, got {raw!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ImproperlyConfigured(f"{name} must be a finite number, got {raw!r}")
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
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
    raise ImproperlyConfigured(f"{name} must be 1 or 0 (true/false), got {raw!r}")


def env_seconds_list(name: str, default: str) -> tuple[float, ...]:
    """A comma-separated list of positive numbers of seconds, e.g. ``10,30,60``."""
    raw = os.environ.get(name) or default
    parts = [part.strip() for part in raw.split(",")]
    try:
        values = tuple(float(part) for part in parts)
    except ValueError:
        raise ImproperlyConfigured(
            f"{name} must be comma-separated seconds like '10,30,60', got {raw!r}"
        ) from None
    if not values or any(value <= 0 or value != value for value in values):
        raise ImproperlyConfigured(f"{name} must list positive seconds, got {raw!r}")
    return values
