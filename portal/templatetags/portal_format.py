"""How the portal shows times and ages: `{% load portal_format %}`."""

from datetime import UTC, datetime, timedelta

from django import template
from django.utils.html import format_html

register = template.Library()


@register.filter
def when(moment: datetime | None) -> str:
    """A <time> in UTC; portal.js rewrites its text in the viewer's time zone and keeps
    UTC in the title (shown on hover). Without scripts it reads in UTC."""
    if moment is None:
        return "–"
    utc = moment.astimezone(UTC)
    text = f"{utc:%Y-%m-%d %H:%M:%S} UTC"
    return format_html(
        '<time datetime="{}" title="{}">{}</time>',
        utc.isoformat(timespec="seconds").replace("+00:00", "Z"), text, text,
    )


@register.filter
def age(delta: timedelta | None) -> str:
    """How long something waited, as people say it: "45 s", "12 min", "3 h 5 min"."""
    if delta is None:
        return "–"
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    hours, rest = divmod(seconds, 3600)
    if hours < 48:
        return f"{hours} h {rest // 60} min"
    return f"{hours // 24} days"
