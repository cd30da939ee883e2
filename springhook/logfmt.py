"""A re-export of core.logfmt for the delivery engine's modules that still import it from
here; apps import `core.logfmt` (tests/test_layers.py lists those modules)."""

from core.logfmt import logfmt

__all__ = ["logfmt"]
