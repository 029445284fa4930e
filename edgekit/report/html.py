"""``report.html``: one self-contained page (inline CSS and SVG drawn here, no scripts, no fonts, no network).

Top to bottom: verdicts and the gate result, the edge-vs-cloud chart across RTTs with its table, one section per
device (latency distribution per artifact against the cloud's compute p50, figures, device conditions), the
artifacts, the cloud method and the gates. Every plot is an ``<svg class="plot" data-plot="...">`` with a
``<title>`` and labelled axes; every text from the report is escaped.
"""

from __future__ import annotations

import math
from html import escape

from .verdict import cloud_by_rtt, cloud_figures, fmt_ms, verdict_lines

PALETTE = ("#1f6fb4", "#d9730d", "#2e8b3e", "#b8336a", "#7b4fb3", "#8c564b", "#0f8c8c", "#b59a00")
CLOUD = "#444444"

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;margin:0;background:#fafafa}
main{max-width:1000px;margin:0 auto;padding:20px 28px 48px;background:#fff}
h1{font-size:22px;margin:4px 0 2px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:18px 0 6px}.meta{color:#666;font-size:13px}
ul.verdicts{list-style:none;padding:0;margin:12px 0}
ul.verdicts li{padding:7px 12px;margin:4px 0;border-left:6px solid #999;background:#f3f3f3;font-weight:600}
.v-edge_wins_always{border-color:#2e8b3e!important;background:#e8f5ea!important}
.v-edge_wins_above{border-color:#1f6fb4!important;background:#e8f0fa!important}
.v-edge_misses_budget{border-color:#c62828!important;background:#fdecea!important}
.v-failed{border-color:#7a0000!important;background:#f6e0e0!important}
.badge{display:inline-block;padding:2px 10px;border-radius:10px;font-weight:700;color:#fff}
.pass{background:#2e8b3e}.fail{background:#c62828}.none{background:#888}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:right}th{background:#f3f3f3}
td.l,th.l{text-align:left}td.ok{color:#2e7d32}td.bad{color:#c62828;font-weight:600}td.warn{background:#fff4d6}
svg.plot{display:block;margin:8px 0;background:#fff;border:1px solid #e4e4e4}
ul.violations li,p.bad{color:#c62828}td.cloudwin{color:#444;font-weight:600}code{background:#f3f3f3;padding:0 4px}
"""


def _e(value) -> str:
    return escape("—" if value is None else str(value))


def _num(value, spec: str = ".4g", suffix: str = "") -> str:
    return "—" if value is None else f"{value:{spec}}{suffix}"


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


class _Plot:
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
    plot = _Plot(f"latency:{device['name']}", f"{device['name']}: latency per artifact (ms)", 900,
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
                  f"{_num(latency.get('p90_ms'))} ms", "end", 11, "#666")
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
    plot = _Plot(name, title, 900, 500 if not zoomed else 400, (56, 170, 62, 64), (0.0, xmax), (0.0, ymax))
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


def _table(headers: list[str], rows: list[list], left: int = 1) -> str:
    """A table; a cell is text, or ``(text, css_class)``; the first ``left`` columns are left-aligned."""
    def cell(tag: str, value, index: int) -> str:
        text, cls = value if isinstance(value, tuple) else (value, "")
        cls = " ".join(c for c in (cls, "l" if index < left else "") if c)
        return f'<{tag}{f" class={chr(34)}{cls}{chr(34)}" if cls else ""}>{_e(text)}</{tag}>'
    head = "".join(cell("th", h, i) for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(cell("td", v, i) for i, v in enumerate(r)) + "</tr>" for r in rows)
    return f"<table>{f'<thead><tr>{head}</tr></thead>' if headers else ''}<tbody>{body}</tbody></table>"


def _gate_badge(gates: dict | None) -> str:
    if not gates:
        return '<span class="badge none">no gates</span>'
    return '<span class="badge pass">gates passed</span>' if gates.get("passed") else \
        '<span class="badge fail">gates failed</span>'


def _rtt_table(report: dict) -> str:
    compute, overhead = cloud_figures(report)
    profiles = report.get("rtt_profiles") or {}
    if compute is None or not profiles:
        return ""
    cloud = report.get("cloud_by_rtt") or cloud_by_rtt(compute, profiles, overhead)
    devices = []
    for device in report.get("devices") or []:
        artifact = (device.get("verdict") or {}).get("artifact")
        result = next((r for r in device.get("results") or [] if r.get("artifact") == artifact), {})
        devices.append((device["name"], (result.get("latency") or {}).get("p50_ms")
                        if result.get("status") == "ok" else None))
    rows = []
    for name, rtt in sorted(profiles.items(), key=lambda item: item[1]):
        total = cloud.get(name, compute + overhead + rtt)
        row = [name, _num(rtt, "g", " ms"), _num(total, ".4g", " ms")]
        for _, p50 in devices:
            if p50 is None:
                row.append("—")
            elif p50 < total:
                row.append((f"edge {fmt_ms(p50)} ms wins", "ok"))
            else:
                row.append((f"cloud wins (edge {fmt_ms(p50)} ms)", "cloudwin"))
        rows.append(row)
    return _table(["profile", "RTT", "cloud latency", *[f"{n} (edge p50)" for n, _ in devices]], rows)


def _conditions(device: dict) -> str:
    rows = []
    for result in device.get("results") or []:
        for when in ("before", "after"):
            c = result.get(f"conditions_{when}") or {}
            governor, temp, throttled, load = (c.get("governor"), c.get("temperature_c"), c.get("throttled"),
                                               c.get("load_1min"))
            rows.append([result.get("artifact"), when,
                         (governor, "warn" if governor not in (None, "performance") else ""),
                         (_num(temp, ".1f", " °C"), "warn" if temp is not None and temp >= 80 else ""),
                         (throttled, "warn" if throttled not in (None, "0x0", "0") else ""),
                         (_num(load, ".2f"), "warn" if when == "before" and load is not None and load >= 1 else "")])
    if not rows:
        return "<p>no conditions recorded</p>"
    return _table(["artifact", "when", "governor", "temperature", "throttled", "load (1 min)"], rows, left=3) + \
        '<p class="meta">highlighted: a governor other than performance, 80 °C or more, throttling, or load ≥ 1 ' \
        "before the run: figures taken under these conditions may mislead.</p>"


def _device_section(report: dict, device: dict, index: int) -> str:
    compute, _ = cloud_figures(report)
    budget = (report.get("model") or {}).get("latency_budget")
    info = device.get("info") or {}
    parts = [f"<h2>device {_e(device['name'])}</h2>"]
    facts = [f"{k} {info[k]}" for k in ("arch", "cpu", "cores", "os") if info.get(k) is not None]
    runtimes = ", ".join(f"{k} {v}" for k, v in (info.get("runtimes") or {}).items())
    parts.append(f'<p class="meta">{_e(device.get("url") or "")}{" · " if facts else ""}{_e(" · ".join(facts))}'
                 f'{" · runtimes: " + _e(runtimes) if runtimes else ""}</p>')
    if device.get("verdict"):
        verdict = device["verdict"]
        parts.append(f'<ul class="verdicts"><li class="v-{_e(verdict.get("kind"))}">{_e(verdict.get("text"))}</li>'
                     "</ul>")
    svg = latency_plot(device, compute, budget, PALETTE[index % len(PALETTE)])
    parts.append(svg or "<p>no artifact ran on this device, so there is no latency to plot</p>")
    rows = []
    for result in device.get("results") or []:
        la, acc = result.get("latency") or {}, result.get("accuracy") or {}
        ci = la.get("p50_ci_ms")
        status = result.get("status")
        rows.append([result.get("artifact"), (status, "ok" if status == "ok" else "bad"), _num(la.get("p50_ms")),
                     _num(la.get("p90_ms")), _num(la.get("p99_ms")), _num(la.get("mean_ms")),
                     f"{ci[0]:.4g}–{ci[1]:.4g}" if ci else "—", _num(la.get("runs"), "d"),
                     _num(acc.get("cosine_min"), ".5f"), _num(acc.get("max_abs_error"), ".3g"),
                     _num(acc.get("top1_agreement"), ".2%")])
    parts.append(_table(["artifact", "status", "p50 ms", "p90 ms", "p99 ms", "mean ms", "p50 95% CI", "runs",
                         "cosine min", "max abs err", "top-1"], rows))
    parts += [f'<p class="bad">✗ {_e(r.get("artifact"))}: {_e(r["error"])}</p>'
              for r in device.get("results") or [] if r.get("error")]
    parts.append("<h3>device conditions</h3>" + _conditions(device))
    return "".join(parts)


def _artifacts(report: dict) -> str:
    rows = []
    for art in report.get("artifacts") or []:
        acc = art.get("accuracy") or {}
        size = art.get("size_bytes")
        rows.append([art.get("name"), art.get("file"), art.get("format"), art.get("precision"),
                     "—" if size is None else f"{size / 1024:.1f} KiB", _num(acc.get("cosine_min"), ".5f"),
                     _num(acc.get("top1_agreement"), ".2%"), _num(acc.get("label_accuracy"), ".2%"),
                     (art.get("sha256") or "")[:12] or "—"])
    return _table(["artifact", "file", "format", "precision", "size", "cosine min", "top-1", "label acc",
                   "sha256"], rows, left=4)


def _cloud(report: dict) -> str:
    cloud = report.get("cloud") or {}
    compute, end_to_end = cloud.get("compute") or {}, cloud.get("end_to_end") or {}
    rows = [["kind", cloud.get("kind")], ["method", cloud.get("method")], ["device", cloud.get("device")],
            ["endpoint", cloud.get("url") or "in-process (no network)"], ["model name", cloud.get("model_name")],
            ["compute p50 / p90 / p99", " / ".join(_num(compute.get(k)) for k in ("p50_ms", "p90_ms", "p99_ms"))
             + " ms"],
            ["end-to-end p50 (measured)", _num(end_to_end.get("p50_ms"), ".4g", " ms")],
            ["network RTT p50 (measured)", _num((cloud.get("network_rtt") or {}).get("p50_ms"), ".4g", " ms")],
            ["overhead beyond RTT", _num(cloud.get("overhead_ms") or 0.0, ".4g", " ms")],
            ["verdicts based on", cloud.get("verdict_basis") or "the compute p50"]]
    notes = "".join(f'<p class="meta">! {_e(note)}</p>' for note in cloud.get("notes") or [])
    return _table([], rows, left=2) + notes + \
        '<p class="meta">cloud latency at RTT r = compute + overhead beyond RTT + r</p>'


def _gates(report: dict) -> str:
    gates = report.get("gates")
    if not gates:
        return "<p>no gates were set (--fail-if, --baseline)</p>"
    items = [f"<li><code>--fail-if {_e(g)}</code></li>" for g in gates.get("fail_if") or []]
    if gates.get("baseline"):
        allowed = gates.get("max_regression")
        items.append(f"<li>baseline <code>{_e(gates['baseline'])}</code>, p50 may slow down by at most "
                     f"{_e(_num(allowed, '.0%'))}</li>")
    parts = [f"<p>{_gate_badge(gates)}</p>", f"<ul>{''.join(items)}</ul>" if items else ""]
    violations = gates.get("violations") or []
    if violations:
        parts.append('<ul class="violations">' + "".join(f"<li>{_e(v)}</li>" for v in violations) + "</ul>")
    else:
        parts.append("<p>no violations</p>")
    return "".join(parts)


def render_html(report: dict) -> str:
    """The whole page as one string: no scripts, no external resources."""
    model = report.get("model") or {}
    source = model.get("source") or {}
    title = f"edgekit compare: {source.get('reference') or 'model'} → target {model.get('target') or '?'}"
    verdicts = "".join(f'<li class="v-{_e(kind)}">{_e(text)}</li>' for kind, text in verdict_lines(report))
    rtt = "".join(rtt_plots(report))
    devices = "".join(_device_section(report, d, i) for i, d in enumerate(report.get("devices") or []))
    return "".join([
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="meta">{_e(report.get("schema"))} · created {_e(report.get("created"))} · cloud: '
        f'{_e((report.get("cloud") or {}).get("method"))}</p>',
        f'<ul class="verdicts">{verdicts}</ul><p>{_gate_badge(report.get("gates"))}</p>',
        "<h2>edge vs cloud across RTT</h2>",
        rtt or "<p>no device latency or cloud compute p50 to compare</p>",
        _rtt_table(report), devices,
        "<h2>artifacts</h2>", _artifacts(report),
        "<h2>cloud baseline</h2>", _cloud(report),
        "<h2>gates</h2>", _gates(report),
        "</main></body></html>\n",
    ])
