"""Rendering results for people: rich tables for export results and target profiles."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def _fmt(value, spec: str, empty: str = "—") -> str:
    return empty if value is None else format(value, spec)


def artifacts_table(manifest: dict) -> Table:
    table = Table(title=f"edgekit export → target {manifest['target']['name']}")
    for column in ("artifact", "precision", "size", "cosine min", "top-1 agree", "label acc", "p50 ms (host)",
                   "pass"):
        table.add_column(column, justify="right" if column not in ("artifact", "precision") else "left")
    for art in manifest["artifacts"]:
        acc = art["accuracy"] or {}
        latency = art["latency_host"] or {}
        mark = "[green]✓[/]" if art["passed"] else "[red]✗[/]"
        name = art["file"] + (" [bold](recommended)[/]" if art["file"] == manifest["recommended"] else "")
        table.add_row(name, art["precision"], f"{art['size_bytes'] / 1024:.1f} KiB", _fmt(acc.get("cosine_min"), ".5f"),
                      _fmt(acc.get("top1_agreement"), ".2%"), _fmt(acc.get("label_accuracy"), ".2%"),
                      _fmt(latency.get("p50_ms"), ".3f"), mark)
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
            console.print(f"[red]rejected[/] {art['file']}: {art['rejected_reason']}")
        fusion = next((s["details"].get("host_fusion") for s in art["steps"] if "host_fusion" in s["details"]), None)
        if fusion and fusion["float_compute_ops"]:
            console.print(f"[yellow]![/] {art['file']}: {fusion['float_compute_ops']} compute op(s) stay in float "
                          f"on this host: {', '.join(fusion['left_in_float'][:5])}")
    for note in manifest["notes"]:
        console.print(f"[yellow]![/] {note}")
    console.print(f"artifact folder: [bold]{out_dir}[/] (manifest.json)")


def targets_table(profiles: dict) -> Table:
    table = Table(title="target profiles")
    for column in ("name", "arch", "formats", "precisions", "threads", "opset", "cosine ≥", "p90 ≤ ms", "file"):
        table.add_column(column)
    for name, (profile, path) in profiles.items():
        table.add_row(name, profile.arch, ", ".join(f.value for f in profile.formats),
                      ", ".join(p.value for p in profile.precisions), str(profile.threads), str(profile.opset),
                      _fmt(profile.accuracy.cosine_min, "g"), _fmt(profile.latency.p90_ms, "g"), str(path))
    return table
