"""``edgekit.compare``: is the edge worth it? The artifact on devices against the original model in the cloud.

Devices: exactly what ``edgekit validate`` does (upload, benchmark, inference checked against this host), through
its functions, on every agent in parallel. Cloud: the FP32 original, either on this host the best way it has
(``cloud="local"``) or on any KServe v2 server (``cloud=URL``), see ``edgekit.cloud``. The two meet in the report
(``docs/report-schema.md``): a verdict per device (the RTT above which the edge is faster), the gates (``fail_if``,
the target's budgets, regression against a ``baseline`` report), and ``report.json`` + ``report.html`` in the
artifact folder or ``out``.

Every input is checked, and the cloud is reached and its model checked, before any device is used.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..agent.client import RUN_TIMEOUT_S, check_url, resolve_token
from ..errors import InputError
from ..manifest import MANIFEST_FILE, Manifest
from ..progress import SilentProgress
from .cloud import CHECK_SAMPLES, Reference, open_cloud, reference_model
from .cloud.v2_client import check_cloud_url
from .devices import (
    BUDGET,
    MAX_SAMPLES,
    PASSED,
    Artifact,
    DeviceResult,
    check_devices,
    device_token,
    select_artifacts,
    target_profile,
    validation_data,
)

CLOUD_TOKEN_ENV = "EDGEKIT_CLOUD_TOKEN"


@dataclass
class CompareResult:
    artifact_dir: Path
    report: dict[str, Any]
    json_path: Path
    html_path: Path

    @property
    def violations(self) -> list[str]:
        return self.report["gates"]["violations"]

    @property
    def failed_runs(self) -> list[tuple[str, str | None]]:
        return failed_runs(self.report)

    @property
    def exit_code(self) -> int:
        return self.report["exit_code"]

    @property
    def passed(self) -> bool:
        return self.exit_code == 0


def failed_runs(report: dict) -> list[tuple[str, str | None]]:
    """(message, hint) for each device that could not be used and each artifact whose run crashed, timed out or
    failed there."""
    found = []
    for device in report["devices"]:
        if device.get("error"):
            found.append((f"{device['name']}: {device['error']}", device.get("hint")))
        found += [(f"{device['name']} {r['artifact']}: {r.get('error') or r['status']}", r.get("hint"))
                  for r in device["results"] if r["status"] != "ok"]
    return found


def exit_code(report: dict) -> int:
    """0 every gate passed; 6 a device or a run on it failed; 5 a gate failed (and nothing worse)."""
    return 6 if failed_runs(report) else 5 if report["gates"]["violations"] else 0


def parse_agents(agents: list[str]) -> list[tuple[str, str]]:
    """``URL`` or ``NAME=URL`` → ``(name, url)``; the name defaults to ``HOST:PORT``; names must be unique."""
    if not agents:
        raise InputError("no agent given", hint="pass --agent http://HOST:PORT (repeat it for several devices; "
                                                "NAME=http://HOST:PORT names a device in the report)")
    parsed = []
    for item in agents:
        name, sep, url = item.partition("=")
        if not sep or "://" in name:
            name, url = "", item
        url = check_url(url)
        parsed.append((name.strip() or url.split("://", 1)[1], url))
    names = [n for n, _ in parsed]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(f"device name(s) {', '.join(duplicates)} given twice",
                         hint="give each agent once, or name them: --agent pi5=http://HOST:PORT")
    return parsed


def compare(artifact_dir: str | Path, agents: list[str], *, cloud: str = "local", token: str | None = None,
            token_file: str | Path | None = None, fingerprint: str | None = None, cloud_model: str | None = None,
            cloud_token: str | None = None,
            cloud_token_file: str | Path | None = None, rtt: list[str] | None = None,
            fail_if: list[str] | None = None, baseline: str | Path | None = None,
            max_regression: str | float | None = None, runs: int = 50, warmup: int = 10, min_seconds: float = 1.0,
            val: str | Path | None = None, tokenizer: str | Path | None = None, preprocess=None,
            out: str | Path | None = None, threads: int | None = None,
            all_candidates: bool = False, timeout_s: float = RUN_TIMEOUT_S,
            progress: SilentProgress | None = None) -> CompareResult:
    """Compare the artifact of ``artifact_dir`` on each agent (``URL`` or ``NAME=URL``) with the cloud baseline.

    Raises ``InputError`` (exit 2) for malformed input (folder, data, ``fail_if``, ``rtt``, a baseline of another
    model), ``AgentError`` without a token, ``CloudError`` (exit 6) when the cloud cannot be used. A device that
    fails is recorded in the report; ``CompareResult.exit_code`` says 0, 5 (a gate failed) or 6 (a device failed).
    """
    from . import report as reports

    progress = progress or SilentProgress()
    folder = Path(artifact_dir)
    devices = parse_agents(agents)
    manifest = Manifest.load(folder)
    profile = target_profile(manifest, None)
    threads = threads or profile.threads
    artifacts = select_artifacts(manifest, folder, all_candidates)
    profiles = reports.parse_rtt_profiles(rtt)
    for expression in fail_if or []:
        reports.parse_fail_if(expression)
    if max_regression is not None and baseline is None:
        raise InputError("--max-regression needs --baseline", hint="pass --baseline previous/report.json")
    regression = reports.parse_regression(max_regression) if max_regression is not None else None
    if cloud != "local":
        cloud = check_cloud_url(cloud)
    model = _model_section(folder, manifest, profile)
    previous = None
    if baseline is not None:
        previous = reports.load_report(baseline)
        reports.check_baseline({"model": model}, previous)
    reference = reference_model(manifest, folder)
    data, notes = validation_data(val, manifest, folder, MAX_SAMPLES, tokenizer=tokenizer, preprocess=preprocess)
    for note in notes:
        progress.note(note)
    secret = device_token([url for _, url in devices], token, token_file, fingerprint)
    cloud_secret = (resolve_token(cloud_token, cloud_token_file) if cloud_token or cloud_token_file
                    else os.environ.get(CLOUD_TOKEN_ENV) or None)

    with progress.step(f"cloud: prepare {'this host' if cloud == 'local' else cloud}"):
        target = open_cloud(cloud, reference, model_name=cloud_model, token=cloud_secret)
    with target:
        _host_outputs(artifacts, reference, data, threads, profile.threads, progress)
        settings = {"threads": threads, "warmup": warmup, "runs": runs, "min_seconds": min_seconds,
                    "timeout_s": timeout_s}
        results = check_devices([url for _, url in devices], secret, artifacts, data, profile, settings, progress)
        check = list(data.head(CHECK_SAMPLES))
        with progress.step(f"cloud: {target.kind} baseline ({reference.path.name})"):
            cloud_section = target.measure(next(iter(data.head(1))), check, warmup=warmup, runs=runs,
                                           min_seconds=min_seconds)

    report = {
        "schema": reports.SCHEMA,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": model,
        "artifacts": [_artifact_section(manifest, a) for a in artifacts],
        "devices": [_device_section(name, url, result) for (name, url), result in zip(devices, results)],
        "cloud": cloud_section,
        "rtt_profiles": profiles,
        "settings": {**settings, "cloud_reference": reference.name},
        "data": {**data.describe(folder), "notes": notes},
    }
    reports.fill_verdicts(report)  # on the compute p50, else the mean, else end-to-end less RTT: cloud.verdict_basis
    report["gates"] = reports.gates_section(report, fail_if, previous, str(baseline) if baseline else None,
                                            regression)
    report["exit_code"] = exit_code(report)
    json_path, html_path = reports.write_report(report, Path(out) if out else folder)
    return CompareResult(folder, report, json_path, html_path)


def _model_section(folder: Path, manifest: Manifest, profile) -> dict:
    digest = hashlib.sha256((folder / MANIFEST_FILE).read_bytes()).hexdigest()
    return {"source": manifest.source.model_dump(), "target": profile.name, "manifest_sha256": digest,
            "inputs": [i.model_dump() for i in manifest.inputs], "recommended": manifest.recommended,
            "latency_budget": profile.latency.model_dump(), "accuracy_budget": profile.accuracy.model_dump()}


def _artifact_section(manifest: Manifest, artifact: Artifact) -> dict:
    entry = manifest.entry(artifact.file)
    accuracy = entry.accuracy or {}
    return {"name": artifact.name, "file": artifact.file, "format": artifact.format, "precision": artifact.precision,
            "size_bytes": entry.size_bytes or artifact.path.stat().st_size, "sha256": artifact.sha256,
            "accuracy": {k: accuracy.get(k) for k in ("cosine_min", "top1_agreement", "label_accuracy")}}


def _host_outputs(artifacts: list[Artifact], reference: Reference, data, threads: int, reference_threads: int,
                  progress) -> None:
    """This host's outputs: of each artifact on every sample (what the devices must match, as validate does), and
    of the FP32 reference on the check samples (what the cloud must match)."""
    from ..runtime import open_runner

    for artifact in artifacts:
        with progress.step(f"host run of {artifact.file} on {len(data)} samples ({threads} threads)"):
            runner = open_runner(artifact.path, threads=threads, **artifact.runner_options)
            artifact.host_outputs = [runner.run(sample) for sample in data]
            artifact.output_names = list(runner.output_names)
    same = next((a for a in artifacts if a.sha256 == reference.sha256 and a.runner_options == reference.runner_options),
                None)
    if same is not None:
        reference.outputs, reference.output_names = same.host_outputs[:CHECK_SAMPLES], same.output_names
        return
    with progress.step(f"host run of the FP32 reference {reference.path.name}"):
        runner = open_runner(reference.path, threads=reference_threads, **reference.runner_options)
        reference.outputs = [runner.run(sample) for sample in data.head(CHECK_SAMPLES)]
        reference.output_names = list(runner.output_names)


def _device_section(name: str, url: str, device: DeviceResult) -> dict:
    results = []
    for check in device.artifacts:
        bench = check.benchmark or {}
        accuracy = check.accuracy or {}
        worst = max((o["max_abs_error"] for o in accuracy.get("outputs") or []), default=None)
        status = "ok" if check.status in (PASSED, BUDGET) else check.status
        results.append({
            "artifact": check.name, "file": check.file, "status": status,
            "latency": bench.get("latency"),
            "accuracy": {"cosine_min": accuracy.get("cosine_min"), "max_abs_error": worst,
                         "top1_agreement": accuracy.get("top1_agreement"), "samples": accuracy.get("samples")}
            if accuracy else None,
            "conditions_before": bench.get("conditions_before"), "conditions_after": bench.get("conditions_after"),
            "error": check.error["message"] if check.error else None,
            "hint": check.error["hint"] if check.error else None,
            "upload": check.upload, "notes": check.notes})
    return {"name": name, "url": url, "info": device.info, "emulated": bool((device.info or {}).get("emulated")),
            "results": results,
            "error": device.error["message"] if device.error else None,
            "hint": device.error["hint"] if device.error else None,
            "notes": device.notes, "seconds": round(device.seconds, 3)}
