"""Edge or cloud? RTT profiles, cloud latency at a given RTT, the break-even RTT and one verdict per device.

The cloud answers in ``compute_p50 + overhead + RTT``, a line that grows with the round-trip time, while the edge
answers in its own p50 whatever the network. So the edge wins *above* the break-even RTT
``edge_p50 - compute_p50 - overhead`` (the issue's "edge wins below X ms RTT" has the direction backwards), and
a break-even at or below zero means the edge wins at any RTT.
"""

from __future__ import annotations

import math
import re

from ...errors import InputError

DEFAULT_RTT_PROFILES: dict[str, float] = {"wired": 5.0, "wifi": 20.0, "4g": 60.0, "3g": 150.0}

VERDICT_KINDS = ("edge_wins_always", "edge_wins_above", "edge_misses_budget", "failed", "emulated")

_PROFILE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9_.+-]*)\s*=\s*(\S+?)\s*(?:ms)?\s*$")
_PROFILE_HINT = "write NAME=MILLISECONDS, e.g. --rtt wifi=25 --rtt sat=600 (RTT ≥ 0 ms)"


def fmt_ms(value: float | None) -> str:
    """A latency for people: ``24.1``, ``3.2``, ``0.0131``, ``123.5`` (four significant digits, no noise)."""
    return "—" if value is None else f"{value:.4g}"


def parse_rtt_profiles(items: list[str] | None = None) -> dict[str, float]:
    """The default RTT profiles (wired 5, wifi 20, 4g 60, 3g 150 ms) with ``NAME=MS`` items added or overriding.

    ``parse_rtt_profiles(["wifi=25", "sat=600"])`` → ``{"wired": 5, "wifi": 25, "4g": 60, "3g": 150, "sat": 600}``.
    """
    profiles = dict(DEFAULT_RTT_PROFILES)
    for item in items or []:
        match = _PROFILE.match(item or "")
        if not match:
            raise InputError(f"malformed RTT profile {item!r}", hint=_PROFILE_HINT)
        name, text = match.groups()
        try:
            value = float(text)
        except ValueError:
            raise InputError(f"malformed RTT profile {item!r}: {text!r} is not a number of milliseconds",
                             hint=_PROFILE_HINT) from None
        if not math.isfinite(value) or value < 0:
            raise InputError(f"malformed RTT profile {item!r}: the RTT must be a finite number ≥ 0 ms",
                             hint=_PROFILE_HINT)
        profiles[name] = value
    return profiles


def cloud_latency(compute_p50: float, rtt_ms: float, overhead_ms: float = 0.0) -> float:
    """What a client at ``rtt_ms`` waits for the cloud: server compute + network overhead beyond RTT + the RTT."""
    return compute_p50 + overhead_ms + rtt_ms


def cloud_by_rtt(compute_p50: float, profiles: dict[str, float], overhead: float = 0.0) -> dict[str, float]:
    """Cloud latency per RTT profile, e.g. ``{"wired": 5.9, "wifi": 20.9, ...}`` for a 0.9 ms compute p50."""
    return {name: round(cloud_latency(compute_p50, rtt, overhead), 6) for name, rtt in profiles.items()}


def break_even_rtt(edge_p50: float, cloud_compute_p50: float, overhead_ms: float = 0.0) -> float:
    """The RTT above which the edge is faster than the cloud; ≤ 0 means the edge wins at any RTT.

    Cloud latency rises with the RTT, edge latency does not, so the edge wins for RTT > the returned value.
    """
    return round(edge_p50 - cloud_compute_p50 - overhead_ms, 6)


def budget_violations(edge_p50: float | None, edge_p90: float | None, latency_budget: dict | None) -> list[str]:
    """``["p90 24.1 ms > 20 ms"]``: each latency figure over the target's budget (``None`` budgets are off)."""
    violations = []
    for key, measured in (("p50_ms", edge_p50), ("p90_ms", edge_p90)):
        limit = (latency_budget or {}).get(key)
        if limit is not None and measured is not None and measured > limit:
            violations.append(f"{key[:3]} {fmt_ms(measured)} ms > {limit:g} ms")
    return violations


def device_verdict(edge_p50: float | None, edge_p90: float | None, cloud_compute_p50: float | None,
                   overhead_ms: float = 0.0, latency_budget: dict | None = None, status: str = "ok") -> dict:
    """One device's verdict: ``{"kind", "text", "break_even_rtt_ms", "budget_violations"}``.

    ``status`` other than ``ok`` gives ``failed``; a p50/p90 over ``latency_budget`` (``{"p50_ms", "p90_ms"}``)
    gives ``edge_misses_budget``; otherwise ``edge_wins_always`` (break-even ≤ 0) or ``edge_wins_above``.
    """
    if status != "ok" or edge_p50 is None:
        reason = status if status != "ok" else "no latency measured"
        return {"kind": "failed", "text": f"device run failed: {reason}", "break_even_rtt_ms": None,
                "budget_violations": []}
    overhead_ms = overhead_ms or 0.0
    even = break_even_rtt(edge_p50, cloud_compute_p50, overhead_ms) if cloud_compute_p50 is not None else None
    violations = budget_violations(edge_p50, edge_p90, latency_budget)
    if violations:
        text = f"edge misses its latency budget ({'; '.join(violations)})"
        kind = "edge_misses_budget"
    elif even is None:
        raise ValueError("a verdict needs the cloud compute p50")
    elif even <= 0:
        cloud = f"cloud compute {fmt_ms(cloud_compute_p50)} ms"
        if overhead_ms:
            cloud += f" + {fmt_ms(overhead_ms)} ms overhead"
        text = f"edge wins at any RTT (edge {fmt_ms(edge_p50)} ms vs {cloud})"
        kind = "edge_wins_always"
    else:
        text = f"edge wins when the RTT is above {fmt_ms(even)} ms; below, the cloud is faster"
        kind = "edge_wins_above"
    return {"kind": kind, "text": text, "break_even_rtt_ms": even, "budget_violations": violations}


def cloud_basis(report: dict) -> tuple[float | None, float, str | None]:
    """``(compute, overhead_ms, basis)``: the cloud figure verdicts stand on, and how it was found.

    The server's compute p50; else its mean compute time (a server that reports no percentiles); else the
    end-to-end p50 less the measured RTT p50 (a server that reports no compute time). ``basis`` is ``None`` for
    the first, a sentence for the others; ``overhead_ms`` (network cost beyond RTT) is 0 when not measured.
    """
    cloud = report.get("cloud") or {}
    compute = cloud.get("compute") or {}
    overhead = float(cloud.get("overhead_ms") or 0.0)
    if compute.get("p50_ms") is not None:
        return compute["p50_ms"], overhead, None
    if compute.get("mean_ms") is not None:
        return compute["mean_ms"], overhead, "the server's mean compute time (it reports no percentiles)"
    end_to_end = (cloud.get("end_to_end") or {}).get("p50_ms")
    if end_to_end is not None:
        rtt = (cloud.get("network_rtt") or {}).get("p50_ms") or 0.0
        return (max(end_to_end - rtt, 0.0), 0.0,
                "end-to-end p50 minus the measured RTT p50 (the server reports no compute time)")
    return None, overhead, None


def cloud_figures(report: dict) -> tuple[float | None, float]:
    """``(compute, overhead_ms)`` from ``report["cloud"]`` (see ``cloud_basis``)."""
    compute, overhead, _ = cloud_basis(report)
    return compute, overhead


def _p(result: dict, key: str) -> float | None:
    return (result.get("latency") or {}).get(key)


def verdict_for_device(device: dict, cloud_compute_p50: float | None, overhead_ms: float = 0.0,
                       latency_budget: dict | None = None) -> dict:
    """The verdict for a device with several artifacts, plus ``"artifact"`` (the one it is based on).

    The fastest (lowest p50) artifact that ran and meets the latency budget decides; if none meets the budget,
    the fastest that ran (``edge_misses_budget``); if none ran, the first failure (``failed``). An emulated device
    gets no edge-vs-cloud verdict (``emulated``): its latency is the emulator's, not the target's.
    """
    results = device.get("results") or []
    ran = [r for r in results if r.get("status") == "ok" and _p(r, "p50_ms") is not None]
    if device.get("emulated") and ran:
        return {"kind": "emulated", "text": "emulated device: its latency is the emulator's, not the target's, so "
                "there is no edge-vs-cloud verdict (its outputs were checked)", "break_even_rtt_ms": None,
                "budget_violations": [], "artifact": None}
    if not ran:
        first = results[0] if results else {"artifact": None, "status": device.get("error") or "no results"}
        verdict = device_verdict(None, None, cloud_compute_p50, overhead_ms, latency_budget, first["status"])
        return {**verdict, "artifact": first.get("artifact")}
    within = [r for r in ran if not budget_violations(_p(r, "p50_ms"), _p(r, "p90_ms"), latency_budget)]
    best = min(within or ran, key=lambda r: _p(r, "p50_ms"))
    verdict = device_verdict(_p(best, "p50_ms"), _p(best, "p90_ms"), cloud_compute_p50, overhead_ms,
                             latency_budget, "ok")
    return {**verdict, "artifact": best["artifact"]}


def fill_verdicts(report: dict) -> dict:
    """Fill ``rtt_profiles`` (defaults if absent), ``cloud_by_rtt``, each ``devices[].verdict`` and ``verdicts``.

    Reads the cloud figure (``cloud_basis``: compute p50, mean, or end-to-end less RTT, recorded in
    ``cloud.verdict_basis`` when it is not the p50), ``cloud.overhead_ms`` and ``model.latency_budget``; changes
    ``report`` in place and returns it.
    """
    compute, overhead, basis = cloud_basis(report)
    if compute is None:
        raise InputError("the report has no cloud latency (cloud.compute or cloud.end_to_end), so there is no "
                         "verdict", hint="measure the cloud baseline before writing the report")
    if basis:
        report["cloud"]["verdict_basis"] = basis
    profiles = report.get("rtt_profiles") or dict(DEFAULT_RTT_PROFILES)
    report["rtt_profiles"] = profiles
    report["cloud_by_rtt"] = cloud_by_rtt(compute, profiles, overhead)
    budget = (report.get("model") or {}).get("latency_budget")
    lines = []
    for device in report.get("devices") or []:
        device["verdict"] = verdict_for_device(device, compute, overhead, budget)
        lines.append(f"{device['name']}: {device['verdict']['text']}")
    report["verdicts"] = lines
    return report


def verdict_lines(report: dict) -> list[tuple[str, str]]:
    """``(kind, "pi5 [tflite/int8_static]: edge wins …")`` per device; the report's ``verdicts`` as a fallback."""
    lines = []
    for device in report.get("devices") or []:
        verdict = device.get("verdict")
        if verdict:
            based = f" [{verdict['artifact']}]" if verdict.get("artifact") else ""
            lines.append((verdict.get("kind", ""), f"{device['name']}{based}: {verdict.get('text', '')}"))
    return lines or [("", line) for line in report.get("verdicts") or []]
