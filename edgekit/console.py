"""Rendering results for people: rich tables for export results and target profiles."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

_STATUS = {"selected": "[bold green]★ selected[/]", "passed": "[green]✓ passed[/]", "rejected": "[red]✗ rejected[/]"}


def _fmt(value, spec: str, empty: str = "—") -> str:
    return empty if value is None else format(value, spec)


def artifacts_table(manifest: dict) -> Table:
    table = Table(title=f"edgekit export → target {manifest['target']['name']} (format {manifest['format']})")
    where = (manifest.get("latency_measured_on") or {}).get("where", "host")
    for column in ("candidate", "file", "size", "cosine min", "top-1", "label acc", f"p50 ms ({where})", "p90 ms",
                   "status"):
        table.add_column(column, justify="left" if column in ("candidate", "file", "status") else "right",
                         no_wrap=True)
    for art in manifest["artifacts"]:
        acc = art["accuracy"] or {}
        latency = art["latency"] or {}
        size = f"{art['size_bytes'] / 1024:.1f} KiB" if art["size_bytes"] is not None else "—"
        table.add_row(art["name"], art["file"] or "—", size, _fmt(acc.get("cosine_min"), ".5f"),
                      _fmt(acc.get("top1_agreement"), ".2%"), _fmt(acc.get("label_accuracy"), ".2%"),
                      _fmt(latency.get("p50_ms"), ".3f"), _fmt(latency.get("p90_ms"), ".3f"), _STATUS[art["status"]])
    return table


def print_export_summary(console: Console, manifest: dict, out_dir) -> None:
    console.print(artifacts_table(manifest))
    reference = next((a["accuracy"]["reference_label_accuracy"] for a in manifest["artifacts"]
                      if a["accuracy"] and a["accuracy"]["reference_label_accuracy"] is not None), None)
    if reference is not None:
        console.print(f"original model label accuracy: {reference:.2%} on {manifest['data']['validation']['samples']}"
                      " validation samples")
    for art in manifest["artifacts"]:
        if art["rejected_reason"]:
            console.print(f"[red]✗[/] {art['name']}: {art['rejected_reason']}", soft_wrap=True)
        for note in art["notes"]:
            console.print(f"[yellow]![/] {art['name']}: {note}", soft_wrap=True)
        fusion = next((s["details"].get("host_fusion") for s in art["steps"] if "host_fusion" in s["details"]), None)
        if fusion and fusion["float_compute_ops"]:
            console.print(f"[yellow]![/] {art['name']}: {fusion['float_compute_ops']} compute op(s) stay in float "
                          f"on this host: {', '.join(fusion['left_in_float'][:5])}", soft_wrap=True)
    for note in manifest["notes"]:
        console.print(f"[yellow]![/] {note}", soft_wrap=True)
    console.print(f"artifact folder: [bold]{out_dir}[/] (manifest.json); recommended: "
                  f"[bold]{manifest['recommended']}[/]")


def targets_table(profiles: dict) -> Table:
    table = Table(title="target profiles")
    for column in ("name", "arch", "formats", "precisions", "threads", "opset", "cosine ≥", "p90 ≤ ms", "file"):
        table.add_column(column)
    for name, (profile, path) in profiles.items():
        table.add_row(name, profile.arch, ", ".join(f.value for f in profile.formats),
                      ", ".join(p.value for p in profile.precisions), str(profile.threads), str(profile.opset),
                      _fmt(profile.accuracy.cosine_min, "g"), _fmt(profile.latency.p90_ms, "g"), str(path))
    return table
