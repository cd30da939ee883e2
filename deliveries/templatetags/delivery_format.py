"""How the admin shows delivery figures to people: `{% load delivery_format %}`."""

from django import template

register = template.Library()


@register.filter
def duration(seconds: float | None) -> str:
    """An attempt's duration as people read it: "0.4 ms", "10 ms", "1.2 s"; "–" if unknown."""
    if seconds is None:
        return "–"
    # Thresholds where the rounded figure would spill into the next unit ("1000 ms").
    if seconds < 0.00995:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 0.9995:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.1f} s"
