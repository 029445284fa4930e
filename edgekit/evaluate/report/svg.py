"""The report's plots as inline SVG, drawn here (no plotting library, no scripts): latency distributions per
device and edge vs cloud across RTTs. Every plot is an ``<svg class="plot" data-plot="...">`` with a ``<title>`` and
labelled axes; every text is escaped."""

from __future__ import annotations

import math
from html import escape

from .verdict import cloud_figures, fmt_ms

PALETTE = ("#1f6fb4", "#d9730d", "#2e8b3e", "#b8336a", "#7b4fb3", "#8c564b", "#0f8c8c", "#b59a00")
CLOUD = "#444444"


def _ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    raw = (hi - lo) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + i * step, 10) for i in range(int((hi - first) / step + 1e-9) + 1)]


def _quantile(ordered: list[float], q: float) -> float:
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class Plot:
    """An SVG canvas with a linear data → pixel mapping for the plot area inside the margins."""

    def __init__(self, name: str, title: str, width: int, height: int, margins: tuple[int, int, int, int],
                 xlim: tuple[float, float], ylim: tuple[float, float] = (0.0, 1.0)):
        self.name, self.title, self.width, self.height = name, title, width, height
        self.top, self.right, self.bottom, self.left = margins
        self.xlim, self.ylim = xlim, ylim
        self.items: list[str] = []

    def x(self, value: float) -> float:
        lo, hi = self.xlim
        return round(self.left + (value - lo) / (hi - lo) * (self.width - self.left - self.right), 2)

    def y(self, value: float) -> float:
        lo, hi = self.ylim
        return round(self.height - self.bottom - (value - lo) / (hi - lo) * (self.height - self.top - self.bottom), 2)

    def line(self, x1, y1, x2, y2, color="#333", width=1.0, dash: str | None = None, cls: str = "") -> None:
        extra = f' stroke-dasharray="{dash}"' if dash else ""
        self.items.append(f'<line class="{cls}" x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="{color}" '
                          f'stroke-width="{width}"{extra}/>')

    def text(self, x, y, content: str, anchor: str = "start", size: int = 12, color: str = "#222",
             weight: str = "normal", rotate: bool = False) -> None:
        turn = f' transform="rotate(-90 {x} {y})"' if rotate else ""
        self.items.append(f'<text x="{x}" y="{y}" text-anchor="{anchor}" font-size="{size}" fill="{color}" '
                          f'font-weight="{weight}"{turn}>{escape(content)}</text>')

    def raw(self, element: str) -> None:
        self.items.append(element)

    def x_axis(self, label: str) -> None:
        base = self.height - self.bottom
        self.line(self.left, base, self.width - self.right, base, "#555")
        for tick in _ticks(*self.xlim):
            self.line(self.x(tick), base, self.x(tick), base + 5, "#555")
            self.line(self.x(tick), self.top, self.x(tick), base, "#eee", cls="grid")
            self.text(self.x(tick), base + 18, f"{tick:g}", "middle", 11, "#444")
        self.text((self.left + self.width - self.right) / 2, base + 36, label, "middle", 12, "#222", "bold")

    def y_axis(self, label: str) -> None:
        self.line(self.left, self.top, self.left, self.height - self.bottom, "#555")
        for tick in _ticks(*self.ylim):
            self.line(self.left - 5, self.y(tick), self.left, self.y(tick), "#555")
            self.line(self.left, self.y(tick), self.width - self.right, self.y(tick), "#eee", cls="grid")
            self.text(self.left - 8, self.y(tick) + 4, f"{tick:g}", "end", 11, "#444")
        middle = (self.top + self.height - self.bottom) / 2
        self.text(16, middle, label, "middle", 12, "#222", "bold", rotate=True)

    def svg(self) -> str:
        grid = [item for item in self.items if 'class="grid"' in item]  # grid lines under everything else
        rest = [item for item in self.items if 'class="grid"' not in item]
        return (f'<svg class="plot" data-plot="{escape(self.name)}" '
                f'width="{self.width}" height="{self.height}" viewBox="0 0 {self.width} {self.height}" role="img">'
                f'<title>{escape(self.title)}</title>' + "".join(grid + rest) + "</svg>")


def _latency_range(results: list[dict], references: list[float]) -> tuple[float, float]:
    """Axis end: the p99s and reference lines with a margin; a max far out in the tail is clipped, not shown."""
    lat = [r["latency"] for r in results]
    base = max([v for la in lat for v in (la.get("p99_ms") or la.get("p90_ms"), la.get("p50_ms")) if v] +
               references + [1e-3]) * 1.15
    tails = [la.get("max_ms") or 0 for la in lat] + [max(la.get("samples_ms") or [0]) for la in lat]
    return 0.0, max([base] + [t * 1.05 for t in tails if t <= base * 1.5])


def latency_plot(device: dict, cloud_p50: float | None, budget: dict | None, color: str) -> str | None:
    """Horizontal box plots, one row per artifact, with the cloud compute p50 and the budget as lines."""
    results = device.get("results") or []
    ran = [r for r in results if r.get("status") == "ok" and (r.get("latency") or {}).get("p50_ms") is not None]
    if not ran:
        return None
    references = [v for v in [cloud_p50, *(budget or {}).values()] if v]
    lo, hi = _latency_range(ran, references)
    row = 48
    plot = Plot(f"latency:{device['name']}", f"{device['name']}: latency per artifact (ms)", 900,
                 48 + row * len(results) + 62, (48, 30, 62, 200), (lo, hi))
    plot.x_axis("latency per inference (ms)")
    with_samples = False
    for index, result in enumerate(results):
        middle = plot.top + row * index + row / 2
        plot.text(plot.left - 12, middle - 2, result.get("artifact") or "?", "end", 12, "#222", "bold")
        latency = result.get("latency") or {}
        if result not in ran:
            plot.text(plot.left + 8, middle + 4, f"✗ run failed: {result.get('status')}", "start", 12, "#c62828",
                      "bold")
            continue
        plot.text(plot.left - 12, middle + 13, f"p50 {fmt_ms(latency['p50_ms'])} · p90 "
                  f"{fmt_ms(latency.get('p90_ms'))} ms", "end", 11, "#666")
        samples = sorted(v for v in latency.get("samples_ms") or [] if v is not None and math.isfinite(v))
        if len(samples) >= 5:
            with_samples = True
            low, q1, median, q3, high = (samples[0], _quantile(samples, .25), _quantile(samples, .5),
                                         _quantile(samples, .75), samples[-1])
            stride = max(1, len(samples) // 300)
            for i, value in enumerate(samples[::stride]):
                if value <= hi:
                    jitter = ((i * 0.6180339887) % 1 - 0.5) * 26
                    plot.raw(f'<circle cx="{plot.x(value)}" cy="{round(middle + jitter, 2)}" r="1.8" fill="{color}" '
                             'fill-opacity="0.35"/>')
        else:
            low, q1, median, q3, high = (latency.get("min_ms") or latency["p50_ms"], latency["p50_ms"],
                                         latency["p50_ms"], latency.get("p90_ms") or latency["p50_ms"],
                                         latency.get("max_ms") or latency.get("p99_ms") or latency["p50_ms"])
            if latency.get("p99_ms") is not None and latency["p99_ms"] <= hi:
                x99 = plot.x(latency["p99_ms"])
                plot.line(x99, middle - 6, x99, middle + 6, color, 2)
                plot.text(x99, middle - 9, "p99", "middle", 9, "#666")
        whisker_end = min(high, hi)
        plot.line(plot.x(low), middle, plot.x(whisker_end), middle, color, 1.2)
        plot.line(plot.x(low), middle - 5, plot.x(low), middle + 5, color, 1.2)
        if high > hi:
            plot.text(plot.x(hi) - 2, middle - 6, f"max {fmt_ms(high)} ▸", "end", 10, "#666")
        else:
            plot.line(plot.x(high), middle - 5, plot.x(high), middle + 5, color, 1.2)
        width = max(plot.x(min(q3, hi)) - plot.x(q1), 1.5)
        plot.raw(f'<rect x="{plot.x(q1)}" y="{middle - 9}" width="{round(width, 2)}" height="18" fill="{color}" '
                 f'fill-opacity="0.25" stroke="{color}" stroke-width="1.2"/>')
        plot.line(plot.x(median), middle - 9, plot.x(median), middle + 9, "#111", 2.2)
    bottom = plot.height - plot.bottom
    references = [(cloud_p50, f"cloud compute p50 {fmt_ms(cloud_p50 or 0)} ms", CLOUD, "6 4")]
    references += [(limit, f"{key[:3]} budget {limit:g} ms", "#c62828", "2 3")
                   for key, limit in (budget or {}).items() if limit is not None]
    for level, (value, label, color, dash) in enumerate(r for r in references if r[0] is not None and r[0] <= hi):
        x, y = plot.x(value), plot.top - 10 - 13 * (level % 2)
        plot.line(x, y + 4, x, bottom, color, 1.5, dash)
        right_side = value < (lo + hi) / 2  # the label goes where there is room
        plot.text(x + 4 if right_side else x - 4, y, label, "start" if right_side else "end", 11, color)
    legend = ("box: middle 50% of the samples, dark line: median, whiskers: min–max, dots: samples"
              if with_samples else "box: p50–p90, whiskers: min–max, tick: p99")
    plot.text(plot.left, plot.height - 8, legend, "start", 10, "#666")
    return plot.svg()


def _edges(report: dict) -> list[tuple[str, float, str]]:
    """``(device, edge p50, colour)`` for each device whose verdict artifact ran."""
    edges = []
    for index, device in enumerate(report.get("devices") or []):
        verdict = device.get("verdict") or {}
        result = next((r for r in device.get("results") or [] if r.get("artifact") == verdict.get("artifact")), {})
        p50 = (result.get("latency") or {}).get("p50_ms") if result.get("status") == "ok" else None
        if p50 is not None:
            edges.append((device["name"], p50, PALETTE[index % len(PALETTE)]))
    return edges


def rtt_plots(report: dict) -> list[str]:
    """The edge-vs-cloud chart over every RTT profile, plus a zoomed view when break-evens crowd its left edge."""
    compute, overhead = cloud_figures(report)
    edges = _edges(report)
    if compute is None or not edges:
        return []
    profiles = report.get("rtt_profiles") or {}
    top_profile = max(list(profiles.values()) + [10.0])
    evens = [p50 - compute - overhead for _, p50, _ in edges]
    xmax = max([top_profile] + [e for e in evens if e <= 3 * top_profile]) * 1.1
    plots = [_rtt_plot("edge-vs-cloud-rtt", "edge vs cloud latency across network round-trip times", compute,
                       overhead, profiles, edges, xmax)]
    crowded = [e for e in evens if 0 < e < 0.15 * xmax]
    if crowded:
        near = max(crowded) * 2.5
        near = max(near, min([r for r in profiles.values() if r > 0] + [near])) * 1.1
        plots.append(_rtt_plot("edge-vs-cloud-rtt-zoom", f"edge vs cloud latency, zoomed to RTT 0–{near:.3g} ms",
                               compute, overhead, profiles, edges, near, zoomed=True))
    return plots


def _rtt_plot(name: str, title: str, compute: float, overhead: float, profiles: dict, edges: list, xmax: float,
              zoomed: bool = False) -> str:
    """Cloud latency (compute + overhead + RTT) against each device's edge p50 across RTTs, break-evens marked."""
    floor = compute + overhead
    shown = [e for e in edges if not zoomed or e[1] <= (floor + xmax) * 1.5]
    ymax = max([floor + xmax] + [p50 for _, p50, _ in shown]) * 1.08
    plot = Plot(name, title, 900, 500 if not zoomed else 400, (56, 170, 62, 64), (0.0, xmax), (0.0, ymax))
    plot.x_axis("network round-trip time, RTT (ms)")
    plot.y_axis("latency seen by the client (ms)")
    base = plot.height - plot.bottom
    row_ends = [-1e9, -1e9, -1e9]
    for profile, rtt in sorted(profiles.items(), key=lambda item: item[1]):
        if rtt > xmax:
            continue
        x = plot.x(rtt)
        label = f"{profile} {rtt:g} ms"
        half = len(label) * 3.2
        row = next((i for i, end in enumerate(row_ends) if x - half > end + 6), len(row_ends) - 1)
        row_ends[row] = x + half
        y = plot.top - 8 - 14 * row
        plot.line(x, y + 3, x, base, "#999", 1, "2 4")
        plot.raw(f'<path d="M{x} {base} l-5 9 h10 z" fill="#666"/>')
        plot.text(x, y, label, "middle", 11, "#555")
        plot.raw(f'<circle cx="{x}" cy="{plot.y(floor + rtt)}" r="3.5" fill="{CLOUD}"/>')
    plot.raw(f'<path d="M{plot.x(0)} {plot.y(floor)} L{plot.x(xmax)} {plot.y(floor + xmax)}" stroke="{CLOUD}" '
             'stroke-width="2.5" fill="none"/>')
    labels = [(plot.y(floor + xmax), f"cloud: {fmt_ms(floor)} ms + RTT", CLOUD)]
    for device, p50, color in edges:
        if (device, p50, color) not in shown:
            labels.append((plot.top - 4, f"{device} {fmt_ms(p50)} ms ↑", color))
            continue
        y = plot.y(p50)
        plot.line(plot.x(0), y, plot.x(xmax), y, color, 2.2)
        labels.append((y, f"{device} {fmt_ms(p50)} ms", color))
        even = p50 - floor
        if 0 < even <= xmax:
            plot.raw(f'<circle cx="{plot.x(even)}" cy="{y}" r="5.5" fill="#fff" stroke="{color}" stroke-width="2.5"/>')
            if zoomed or even >= 0.15 * xmax:  # crowded points are labelled in the zoomed view
                plot.text(plot.x(even) + 8, y + 16, f"break-even {fmt_ms(even)} ms", "start", 11, color, "bold")
        elif even > xmax and not zoomed:
            plot.text(plot.x(xmax) - 4, y - 6, f"break-even {fmt_ms(even)} ms, off the chart", "end", 11, color)
    previous = -1e9
    for y, text, color in sorted(labels):  # right-hand labels, pushed apart so they never overlap
        y = max(y + 4, previous + 14)
        plot.text(plot.width - plot.right + 8, y, text, "start", 12, color, "bold")
        previous = y
    cloud = f"cloud = compute p50 {fmt_ms(compute)} ms" + (f" + overhead {fmt_ms(overhead)} ms" if overhead else "")
    plot.text(plot.left, plot.height - 8, f"{cloud} + RTT; a device's edge wins right of its break-even point, "
              "where the cloud line is above its line", "start", 10, "#666")
    return plot.svg()
