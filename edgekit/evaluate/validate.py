"""``edgekit.validate``: run an artifact folder's model on real devices through their agents, and check it there.

The device work is in ``edgekit.devices``; this module runs it for every agent in parallel and writes the
results to ``validation.json`` in the artifact folder (atomically). With ``all_candidates``, a device that may
decide (the target's architecture, not emulated) also makes the measured choice, recorded in ``manifest.json``
(``edgekit.evaluate.select``); no other file there is touched.
"""

from __future__ import annotations

import platform
import stat
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..agent.client import RUN_TIMEOUT_S, check_url
from ..errors import InputError
from ..exporter.ownership import own_entries
from ..files import write_json_atomic
from ..manifest import MANIFEST_FILE, Manifest
from ..progress import SilentProgress
from ..runtime import open_runner
from .devices import (
    DEVICE_VS_HOST,
    MAX_SAMPLES,
    DeviceResult,
    check_devices,
    device_token,
    select_artifacts,
    target_profile,
    validation_data,
)
from .select import Selection, apply_validation

VALIDATION_SCHEMA = "edgekit.validation/1"
VALIDATION_FILE = "validation.json"


@dataclass
class ValidationResult:
    artifact_dir: Path
    path: Path  # validation.json
    devices: list[DeviceResult]
    report: dict[str, Any]
    selection: Selection | None = None  # the measured choice (``all_candidates`` only)

    @property
    def passed(self) -> bool:
        return all(d.passed for d in self.devices)

    @property
    def exit_code(self) -> int:
        """0 passed; 6 an agent failed or a run crashed or timed out; 5 a budget was broken (and nothing worse)."""
        codes = [d.exit_code for d in self.devices]
        return 6 if 6 in codes else max(codes, default=0)

    def problems(self) -> list[tuple[str, str | None]]:
        """(message, hint) for every device or artifact that did not pass."""
        found = []
        for device in self.devices:
            if device.error:
                found.append((device.error["message"], device.error["hint"]))
            for check in device.artifacts:
                if check.error:
                    found.append((check.error["message"], check.error["hint"]))
                elif check.violations:
                    found.append((f"budget broken on {device.agent}: {check.file}: " + "; ".join(check.violations),
                                  _budget_hint(check.violations)))
        return found


def _budget_hint(violations: list[str]) -> str:
    if any(v.startswith(DEVICE_VS_HOST) for v in violations):
        return ("the device computes different numbers than this host from the same file: compare the runtime "
                "versions in validation.json (device.runtimes) with this host's")
    return "choose a faster artifact (--all shows every candidate), or relax the latency budget (--max-p50/--max-p90)"


def validate(artifact_dir: str | Path, agents: list[str], *, token: str | None = None,
             token_file: str | Path | None = None, fingerprint: str | None = None, val: str | Path | None = None,
             tokenizer: str | Path | None = None, preprocess=None, threads: int | None = None,
             runs: int = 50, warmup: int = 10, min_seconds: float = 1.0, all_candidates: bool = False,
             latency: dict[str, float | None] | None = None, samples: int = MAX_SAMPLES,
             timeout_s: float = RUN_TIMEOUT_S, progress: SilentProgress | None = None) -> ValidationResult:
    """Validate the recommended artifact of ``artifact_dir`` (every usable one with ``all_candidates``) on each
    agent URL. ``token``/``token_file``/``$EDGEKIT_AGENT_TOKEN`` authenticate (``fingerprint`` pins an https
    agent's certificate where the token file does not); ``val`` overrides the export's
    validation data (``tokenizer``/``preprocess`` read sentences or images, as for export); ``latency``
    (``p50_ms``/``p90_ms``) overrides the target's latency budget.

    Raises for bad input (folder, data, token); a device that fails is recorded in the result instead, and
    ``ValidationResult.passed`` is false.
    """
    progress = progress or SilentProgress()
    folder = Path(artifact_dir)
    if not agents:
        raise InputError("no agent given", hint="pass --agent http://HOST:PORT (repeat it for several devices)")
    agents = [check_url(url) for url in agents]
    manifest = Manifest.load(folder)
    profile = target_profile(manifest, latency)
    threads = threads or profile.threads
    artifacts = select_artifacts(manifest, folder, all_candidates)
    data, notes = validation_data(val, manifest, folder, samples, tokenizer=tokenizer, preprocess=preprocess)
    for note in notes:
        progress.note(note)
    secret = device_token(agents, token, token_file, fingerprint)
    for artifact in artifacts:
        with progress.step(f"host run of {artifact.file} on {len(data)} samples ({threads} threads)"):
            runner = open_runner(artifact.path, threads=threads, **artifact.runner_options)
            # candidates.run_samples, inlined: that module imports the export steps and so onnx (export extra)
            artifact.host_outputs = [runner.run(sample) for sample in data]
            artifact.output_names = list(runner.output_names)
    settings = {"threads": threads, "warmup": warmup, "runs": runs, "min_seconds": min_seconds,
                "timeout_s": timeout_s}
    devices = check_devices(agents, secret, artifacts, data, profile, settings, progress)
    report = {
        "schema": VALIDATION_SCHEMA,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "passed": all(d.passed for d in devices),
        "manifest": {"created": manifest.created, "recommended": manifest.recommended},
        "target": {"name": profile.name, "arch": profile.arch, "accuracy": profile.accuracy.model_dump(),
                   "latency": profile.latency.model_dump()},
        "settings": settings,
        "data": {**data.describe(folder), "notes": notes},
        "compared_with": "this host running the same file (same runner options and threads)",
        "host": {"arch": platform.machine()},
        "artifacts": [a.describe() for a in artifacts],
        "devices": [d.to_dict() for d in devices],
    }
    result = ValidationResult(folder, folder / VALIDATION_FILE, devices, report)
    report["exit_code"] = result.exit_code
    manifest_mode = stat.S_IMODE((folder / MANIFEST_FILE).stat().st_mode)  # as readable as the manifest
    write_json_atomic(result.path, report, mode=manifest_mode)
    own_entries(folder, [VALIDATION_FILE])
    if all_candidates:
        result.selection = apply_validation(folder, manifest, report)
    return result
