"""Inline SVG line charts of a tenant's memory and CPU over time (no JavaScript, no build step): for the console.

Pure: points in, SVG markup out (escaped by the template engine's ``Markup`` only after every value here is a
number we formatted ourselves).
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup

from reconciler.api.models import UsagePoint

WIDTH, HEIGHT, PAD = 560, 140, 28


def _path(values: Sequence[float], top: float) -> str:
    if len(values) == 1:
        values = [values[0], values[0]]
    step = (WIDTH - 2 * PAD) / (len(values) - 1)
    scale = (HEIGHT - 2 * PAD) / top if top > 0 else 0.0
    return " ".join(f"{PAD + i * step:.1f},{HEIGHT - PAD - v * scale:.1f}" for i, v in enumerate(values))


def line_chart(points: Sequence[UsagePoint], metric: str, label: str) -> Markup:
    """One series (``memory`` in MiB or ``cpu`` in cores) as an SVG polyline with its maximum marked."""
    if metric == "memory":
        values = [p.memory_bytes / 2**20 for p in points]
        unit = "MiB"
    else:
        values = [p.cpu_cores or 0.0 for p in points]
        unit = "cores"
    top = max(values) * 1.1 if values and max(values) > 0 else 1.0
    first = points[0].at.strftime("%H:%M:%S") if points else ""
    last = points[-1].at.strftime("%H:%M:%S") if points else ""
    line = f'<polyline fill="none" stroke="#2a6fdb" stroke-width="2" points="{_path(values, top)}"/>' if values else ""
    peak = f"{max(values):.2f}" if values else "0"
    svg = (
        f'<svg class="chart" role="img" data-metric="{metric}" data-points="{len(values)}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" xmlns="http://www.w3.org/2000/svg">'
        f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#fafafa" stroke="#ddd"/>'
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" stroke="#999"/>'
        f"{line}"
        f'<text x="{PAD}" y="16" font-size="12" direction="ltr">max {peak} {unit}</text>'
        f'<text x="{PAD}" y="{HEIGHT - 8}" font-size="11" direction="ltr">{first}</text>'
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - 8}" font-size="11" text-anchor="end" direction="ltr">{last}</text>'
        "</svg>"
    )
    return Markup(f"<figure><figcaption>{Markup.escape(label)}</figcaption>{svg}</figure>")
