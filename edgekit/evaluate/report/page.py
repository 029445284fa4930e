"""``report.html``: one self-contained page (inline CSS and SVG drawn here, no scripts, no fonts, no network).

Top to bottom: verdicts and the gate result, the edge-vs-cloud chart across RTTs with its table, one section per
device (latency distribution per artifact against the cloud's compute p50, figures, device conditions), the
artifacts, the cloud method and the gates. Every plot is an ``<svg class="plot" data-plot="...">`` with a
``<title>`` and labelled axes (drawn by ``svg.py``); every text from the report is escaped.
"""

from __future__ import annotations

from html import escape

from .svg import PALETTE, latency_plot, rtt_plots
from .verdict import cloud_by_rtt, cloud_figures, fmt_ms, verdict_lines

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
.v-emulated{border-color:#9a7b00!important;background:#fdf6e0!important}
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
    if device.get("emulated"):
        facts.append("EMULATED (" + "; ".join((info.get("emulation") or {}).get("evidence") or ["the agent says so"])
                     + "): latency is the emulator's, not the target's")
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


GENERATOR = "edgekit compare"  # how a later run knows the page is edgekit's to replace


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
        f'<meta name="generator" content="{GENERATOR}">',
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
