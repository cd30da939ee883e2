"""A server-rendered SVG bar chart of accepted and failed attempts per hour: no script, no
library, nothing fetched from the network."""

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from deliveries.selectors import HourBucket

ACCEPTED_COLOUR = "#2e7d32"
FAILED_COLOUR = "#c62828"


def hourly_chart_svg(
    buckets: list[HourBucket], *, width: int = 960, height: int = 180
) -> SafeString:
    """Stacked bars (accepted below, failed on top), one per hour, with the peak on the
    axis and a time label every 6 hours; each bar has a tooltip with its numbers."""
    left, right, top, bottom = 44, 40, 10, 22
    plot_width, plot_height = width - left - right, height - top - bottom
    peak = max((bucket.accepted + bucket.failed for bucket in buckets), default=0) or 1
    slot = plot_width / max(len(buckets), 1)
    bar_width = max(slot - 2, 1)
    bars, labels = [], []
    for index, bucket in enumerate(buckets):
        x = left + index * slot + 1
        accepted_height = plot_height * bucket.accepted / peak
        failed_height = plot_height * bucket.failed / peak
        title = (
            f"{bucket.start:%Y-%m-%d %H}:00 UTC: {bucket.accepted} accepted, "
            f"{bucket.failed} failed"
        )
        base = top + plot_height
        for y, bar_height, colour in (
            (base - accepted_height, accepted_height, ACCEPTED_COLOUR),
            (base - accepted_height - failed_height, failed_height, FAILED_COLOUR),
        ):
            if bar_height > 0:
                bars.append((_number(x), _number(y), _number(bar_width), _number(bar_height),
                             colour, title))
        if bucket.start.hour % 6 == 0:
            labels.append((_number(x), height - 6, f"{bucket.start:%d %b %H}h"))
    # format_html escapes its arguments into strings: numbers are formatted beforehand.
    rects = format_html_join(
        "",
        '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}</title></rect>',
        bars,
    )
    texts = format_html_join(
        "", '<text x="{}" y="{}" font-size="10" fill="#666">{}</text>', labels
    )
    return format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" class="hourly-chart" role="img" '
        'viewBox="0 0 {w} {h}" width="100%" preserveAspectRatio="xMinYMin meet" '
        'aria-label="Accepted and failed attempts per hour">'
        '<line x1="{l}" y1="{base}" x2="{r}" y2="{base}" stroke="#999"/>'
        '<line x1="{l}" y1="{t}" x2="{l}" y2="{base}" stroke="#999"/>'
        '<text x="{lt}" y="{ty}" font-size="10" fill="#666" text-anchor="end">{peak}</text>'
        '<text x="{lt}" y="{base}" font-size="10" fill="#666" text-anchor="end">0</text>'
        "{rects}{texts}</svg>",
        w=width, h=height, l=left, r=width - right, t=top, base=top + plot_height,
        lt=left - 4, ty=top + 8, peak=peak if any(b.accepted + b.failed for b in buckets) else 0,
        rects=rects, texts=texts,
    )


def _number(value: float) -> str:
    return f"{value:.1f}"
