"""The report in a terminal (rich): the same summary as report.html, without the plots."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .verdict import cloud_by_rtt, cloud_figures, fmt_ms, verdict_lines

_KIND_STYLE = {"edge_wins_always": "green", "edge_wins_above": "blue", "edge_misses_budget": "red",
               "failed": "bold red", "emulated": "yellow"}
_MARK = {"edge_wins_always": "✓", "edge_wins_above": "↔", "edge_misses_budget": "✗", "failed": "✗", "emulated": "~"}


def _fmt(value, spec: str = ".4g") -> str:
    return "—" if value is None else format(value, spec)


def device_table(device: dict) -> Table:
    info = device.get("info") or {}
    emulated = ", emulated: latency not the target's" if device.get("emulated") else ""
    title = (f"{device['name']}: {info.get('cpu', '?')} ({info.get('arch', '?')}, {info.get('cores', '?')} cores"
             f"{emulated})")
    table = Table(title=escape(title))
    for column in ("artifact", "p50 ms", "p90 ms", "p99 ms", "p50 CI ms", "cosine min", "top-1", "status"):
        table.add_column(column, justify="left" if column in ("artifact", "status") else "right", no_wrap=True)
    chosen = (device.get("verdict") or {}).get("artifact")
    for result in device.get("results") or []:
        latency, accuracy = result.get("latency") or {}, result.get("accuracy") or {}
        interval = latency.get("p50_ci_ms")
        status = result.get("status") or "?"
        shown = "[green]ok[/]" if status == "ok" else f"[red]✗ {escape(status)}[/]"
        if status == "ok" and result.get("artifact") == chosen:
            shown += " [bold](verdict)[/]"
        table.add_row(escape(str(result.get("artifact"))), _fmt(latency.get("p50_ms")), _fmt(latency.get("p90_ms")),
                      _fmt(latency.get("p99_ms")), f"{interval[0]:.4g}–{interval[1]:.4g}" if interval else "—",
                      _fmt(accuracy.get("cosine_min"), ".5f"), _fmt(accuracy.get("top1_agreement"), ".2%"), shown)
    return table


def cloud_line(report: dict) -> str:
    cloud = report.get("cloud") or {}
    compute, overhead = cloud_figures(report)
    where = cloud.get("url") or "in-process"
    line = f"cloud ({cloud.get('kind', '?')}, {where}): {cloud.get('method', '?')} on {cloud.get('device', '?')}"
    if compute is None:
        return line + "; no compute p50"
    what = f"compute p50 {fmt_ms(compute)} ms" if not cloud.get("verdict_basis") else \
        f"{fmt_ms(compute)} ms ({cloud['verdict_basis']})"
    line += f"; {what}" + (f" + {fmt_ms(overhead)} ms overhead" if overhead else "")
    profiles = report.get("rtt_profiles") or {}
    by_rtt = report.get("cloud_by_rtt") or cloud_by_rtt(compute, profiles, overhead)
    if by_rtt:
        line += " → " + " · ".join(f"{name} ({profiles.get(name, 0):g} ms RTT) {fmt_ms(total)} ms"
                                   for name, total in by_rtt.items())
    return line


def print_report(console: Console, report: dict) -> None:
    """Verdicts, a table per device, the cloud baseline and the gates."""
    model = report.get("model") or {}
    source = model.get("source") or {}
    console.print(f"[bold]edgekit compare[/]: {escape(str(source.get('reference') or 'model'))} → target "
                  f"{escape(str(model.get('target') or '?'))} ({escape(str(report.get('created')))})", highlight=False)
    for kind, text in verdict_lines(report):
        style = _KIND_STYLE.get(kind, "bold")
        console.print(f"[{style}]{_MARK.get(kind, '•')} {escape(text)}[/]", highlight=False, soft_wrap=True)
    for device in report.get("devices") or []:
        console.print(device_table(device))
    console.print(escape(cloud_line(report)), highlight=False, soft_wrap=True)
    for note in (report.get("cloud") or {}).get("notes") or []:
        console.print(f"[yellow]![/] cloud: {escape(str(note))}", highlight=False, soft_wrap=True)
    gates = report.get("gates")
    if not gates:
        console.print("gates: none set", highlight=False)
        return
    rules = [f"--fail-if {g}" for g in gates.get("fail_if") or []]
    if gates.get("baseline"):
        rules.append(f"baseline {gates['baseline']} (max regression {_fmt(gates.get('max_regression'), '.0%')})")
    state = "[green]passed[/]" if gates.get("passed") else "[red]failed[/]"
    console.print(f"gates {state}" + (f": {escape('; '.join(rules))}" if rules else " (target budgets only)"),
                  highlight=False, soft_wrap=True)
    for violation in gates.get("violations") or []:
        console.print(f"[red]✗[/] {escape(violation)}", highlight=False, soft_wrap=True)
