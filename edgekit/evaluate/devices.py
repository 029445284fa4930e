"""Running an artifact folder's models on devices through their agents (used by validate and compare).

For every agent: health, device info, upload (skipped when the agent has the file), benchmark on the device,
inference on the validation inputs. The device's outputs are compared with this host's outputs of the same file
by the export's own gate (``compare_outputs`` + ``apply_budget``), and its latency with the target's budget.
"""

from __future__ import annotations

import math
import os
import platform
import re
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from pydantic import ValidationError

from ..accuracy import apply_budget, compare_outputs
from ..agent.client import AgentClient, AgentError, AgentToken, outputs_of, require_token, run_failure
from ..data import SampleSet, load_data, load_samples
from ..errors import EdgekitError, InputError, TargetError
from ..manifest import Manifest
from ..runtime.ir_bundle import artifact_digest, artifact_files
from ..specs import InputSpec
from ..targets import normalized_arch

MAX_SAMPLES = 64
EMULATED_SAMPLES = 4  # an emulator runs a model tens of times slower (YOLOv8n under qemu: ~10 s per run)
EMULATED_RUNS = 5  # emulated latency decides nothing: a short benchmark, recorded
HOT_C = 80.0
DEVICE_VS_HOST = "device vs host"
PASSED, BUDGET = "passed", "failed"  # artifact statuses besides the agent's runtime_crashed / timeout / error
# ONNX Runtime's words for an op its build has no kernel or schema for
_MISSING_OP = (re.compile(r"Could not find an implementation for (?P<op>[\w.]+)\(\d+\) node with name"),
               re.compile(r"(?P<domain>[\w.]+):(?P<op>\w+)\(-?\d+\) is not a registered function/op"))
# ops that ONNX Runtime's `all` optimization level writes into a saved graph on x86 only (NCHWc blocked layout)
_X86_ONLY_OPS = {"ReorderInput": "com.microsoft.nchwc", "ReorderOutput": "com.microsoft.nchwc"}


@dataclass
class Artifact:
    """One model file of the folder, with the host's outputs on the validation inputs."""

    name: str
    file: str
    path: Path
    sha256: str
    format: str
    precision: str
    runner_options: dict[str, Any]
    host_outputs: list[list[np.ndarray]] = field(default_factory=list, repr=False)
    output_names: list[str] = field(default_factory=list)
    output_kinds: list[str | None] = field(default_factory=list)  # as the export's gate judged them

    def describe(self) -> dict:
        return {"name": self.name, "file": self.file, "sha256": self.sha256, "format": self.format,
                "precision": self.precision, "runner_options": self.runner_options, "output_names": self.output_names}


@dataclass
class ArtifactCheck:
    """One artifact on one device. ``status``: passed, failed (a budget broken), or the agent's runtime_crashed,
    timeout or error; ``error`` holds the message and hint for the last three."""

    name: str
    file: str
    status: str = PASSED
    upload: dict | None = None
    benchmark: dict | None = None
    accuracy: dict | None = None
    violations: list[str] = field(default_factory=list)
    error: dict | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    def fail(self, error: EdgekitError, status: str = "error") -> None:
        self.status = status
        self.error = _error_dict(error)

    def to_dict(self) -> dict:
        return {"name": self.name, "file": self.file, "status": self.status, "passed": self.passed,
                "upload": self.upload, "benchmark": self.benchmark, "accuracy": self.accuracy,
                "violations": self.violations, "error": self.error, "notes": self.notes}


@dataclass
class DeviceResult:
    agent: str
    info: dict | None = None
    artifacts: list[ArtifactCheck] = field(default_factory=list)
    error: dict | None = None  # the agent could not be used at all (unreachable, wrong token, …)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.error is None and all(a.passed for a in self.artifacts)

    @property
    def exit_code(self) -> int:
        codes = [self.error["exit_code"]] if self.error else []
        codes += [a.error["exit_code"] for a in self.artifacts if a.error]
        if codes:
            return max(codes)
        return 5 if any(a.status == BUDGET for a in self.artifacts) else 0

    def to_dict(self) -> dict:
        return {"agent": self.agent, "passed": self.passed, "device": self.info, "error": self.error,
                "artifacts": [a.to_dict() for a in self.artifacts], "notes": self.notes,
                "seconds": round(self.seconds, 3)}


def input_specs(manifest: Manifest) -> list[InputSpec]:
    return [InputSpec(i.name, tuple(i.shape), i.dtype) for i in manifest.inputs]


def target_profile(manifest: Manifest, latency: dict[str, float | None] | None):
    """The manifest's target profile, with ``latency`` (p50_ms/p90_ms) overriding its budget where given."""
    profile = manifest.target
    given = {k: v for k, v in (latency or {}).items() if v is not None}
    if not given:
        return profile
    try:
        budget = profile.latency.model_validate({**profile.latency.model_dump(), **given})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise TargetError(f"a latency budget override is invalid: {problems}",
                          hint="latency budgets must be positive numbers of milliseconds") from exc
    return profile.model_copy(update={"latency": budget})


def select_artifacts(manifest: Manifest, folder: Path, all_candidates: bool) -> list[Artifact]:
    if all_candidates:
        chosen = [a for a in manifest.built if a.passed]
        if not chosen:
            raise InputError(f"no usable artifact in {folder}: every candidate was rejected",
                             hint="see manifest.json for why; re-export with a looser budget")
    else:
        chosen = [a for a in manifest.built if a.file == manifest.recommended]
        if not chosen:
            raise InputError(f"{folder} has no recommended artifact (export status: {manifest.status})",
                             hint="pass --all to validate every usable candidate, or re-export")
    artifacts = []
    for entry in chosen:
        path = folder / entry.file
        missing = [p for p in artifact_files(path) if not p.is_file()]
        if missing:
            raise InputError(f"{missing[0]} is listed in the manifest but missing", hint="re-run `edgekit export`")
        digest = artifact_digest(path)
        if entry.sha256 and digest != entry.sha256:
            raise InputError(f"{path} changed since the export (sha256 {digest[:12]}…, manifest "
                             f"{entry.sha256[:12]}…)", hint="re-run `edgekit export` so manifest and file agree")
        artifacts.append(Artifact(entry.name, entry.file, path, digest, entry.format, entry.precision,
                                  dict(entry.runner_options), output_kinds=[o.kind for o in manifest.outputs]))
    return artifacts


def validation_data(val, manifest: Manifest, folder: Path, limit: int, **how) -> tuple[SampleSet, list[str]]:
    """``--val`` (``how``: tokenizer, preprocess, as for export), else the export's validation data where it is
    found from the folder unchanged (sentences and image folders read as the export read them), else the samples
    the folder ships (``samples/validation.npz``); neither is an ``InputError``."""
    notes: list[str] = []
    specs = input_specs(manifest)
    record = manifest.data.validation
    original = record.located(folder)
    shipped = record.shipped
    if val is not None:
        data = load_data(val, specs, **how)
    elif original is not None:
        data = load_data(original, specs, **record.reload_from(folder))
    elif shipped is not None and shipped.file is not None and (folder / shipped.file).is_file():
        data = load_samples(folder / shipped.file, specs)
        if not record.synthetic:
            notes.append(f"the export's validation data ({record.path}) is not found from {folder} or has changed: "
                         f"using the {len(data)} samples the folder ships ({shipped.file})")
    else:
        why = shipped.reason if shipped is not None and shipped.reason else "the folder ships none"
        raise InputError(f"no validation data for {folder}: the export's ({record.path or record.origin}) is not "
                         f"found from there or has changed, and {why}",
                         hint="pass --val with the validation data, or re-export so the folder carries its samples")
    if record.synthetic and val is None:
        notes.append(f"the export used synthetic validation data: comparing device and host on {len(data)} random "
                     "inputs, which is weak evidence; pass --val with real inputs")
    if len(data) > limit:
        notes.append(f"using the first {limit} of {len(data)} validation samples")
        data = data.head(limit)
    return data, notes


def device_token(agents: list[str], token: str | None, token_file, fingerprint: str | None = None) -> str:
    """The agents' token (carrying ``fingerprint``, if given, for ``AgentClient`` to pin). A token file that is gone while no agent even accepts a connection means the device is
    not running (a stopped device takes its token with it): that is the error (exit 6), not the token file."""
    if token is None and token_file is not None and not os.path.lexists(token_file):
        down = [url for url in agents if not _accepts_connections(url)]
        if len(down) == len(agents):
            raise AgentError(f"no agent answers at {', '.join(down)}: the device is not running or not reachable "
                             f"(and its token file {token_file} is gone)",
                             hint="start the agent on the device (the emulated one: sudo scripts/arm64-device.sh "
                                  "start), then pass the token file it prints", url=down[0])
    secret = require_token(token, token_file)
    return AgentToken(secret, fingerprint) if fingerprint else secret


def _accepts_connections(url: str, timeout_s: float = 3.0) -> bool:
    parsed = urlsplit(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname, port), timeout=timeout_s).close()
    except OSError:
        return False
    return True


def check_devices(urls: list[str], token: str, artifacts: list[Artifact], data: SampleSet, profile,
                  settings: dict, progress) -> list[DeviceResult]:
    """``check_device`` on every agent at once. If the caller is interrupted, the threads are left to finish their
    current request on their own: the caller does not wait for devices it no longer wants to hear from."""
    pool = ThreadPoolExecutor(max_workers=len(urls))
    try:
        futures = [pool.submit(check_device, url, token, artifacts, data, profile, settings, progress)
                   for url in urls]
        results = [future.result() for future in futures]
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return results


def check_device(url: str, token: str, artifacts: list[Artifact], data: SampleSet, profile, settings: dict,
               progress) -> DeviceResult:
    started = time.perf_counter()
    result = DeviceResult(url)
    label = url.split("://", 1)[-1]
    with AgentClient(url, token) as client:
        try:
            with progress.step(f"{label}: health and device info"):
                client.health()
                result.info = client.info()
            result.notes += _device_notes(result.info, profile, settings["threads"])
        except EdgekitError as error:
            result.error = _error_dict(error)
        else:
            for artifact in artifacts:
                result.artifacts.append(_check(client, label, artifact, data, profile, settings, progress,
                                               result.info))
    result.seconds = time.perf_counter() - started
    return result


def _check(client: AgentClient, label: str, artifact: Artifact, data: SampleSet, profile, settings: dict,
           progress, info: dict) -> ArtifactCheck:
    """One artifact on the device described by ``info`` (its /v1/info): upload, benchmark, then the outputs on
    every sample against the host's. On an emulated device the output check (what an emulator is good for) comes
    first, on a few samples, then a short benchmark whose latency is recorded, never checked, and whose failure
    (a timeout under qemu) is a note, not a failed check."""
    check = ArtifactCheck(artifact.name, artifact.file)
    emulated = bool(info.get("emulated"))
    try:
        with progress.step(f"{label}: upload {artifact.file}"):
            check.upload = client.upload(artifact.path)
        if not check.upload["uploaded"]:
            check.notes.append("upload skipped: the agent already had this file")
        if emulated:
            if len(data) > EMULATED_SAMPLES:
                check.notes.append(f"emulated device: outputs checked on the first {EMULATED_SAMPLES} of {len(data)} "
                                   "samples (an emulator runs models tens of times slower)")
                data = data.head(EMULATED_SAMPLES)
            device = _outputs(client, label, artifact, data, settings, progress, check)
            if device is not None:
                _benchmark(client, label, artifact, data, _emulated(settings), progress, check, info)
        elif _benchmark(client, label, artifact, data, settings, progress, check, info):
            device = _outputs(client, label, artifact, data, settings, progress, check)
        else:
            check.notes.append("inference skipped: the benchmark did not succeed")
            return check
        if device is None:
            return check
    except AgentError as error:  # an upload the device's runtime cannot load is a 400 naming the op
        error.hint = missing_op_hint(f"{error.message} {error.detail}", info) or error.hint
        check.fail(error)
        return check
    except (KeyError, TypeError, ValueError) as exc:
        check.fail(AgentError(f"agent {client.url}: its reply for {artifact.file} does not fit the API: "
                              f"{type(exc).__name__}: {exc}",
                              hint="are client and agent the same edgekit version?", url=client.url))
        return check
    report = apply_budget(compare_outputs(artifact.host_outputs[:len(data)], device, artifact.output_names, data.labels,
                                          artifact.output_kinds or None), profile.accuracy)
    check.accuracy = report.to_dict()
    check.violations = [f"{DEVICE_VS_HOST}: {v}" for v in report.violations]
    if not emulated:
        check.violations += _latency_violations(check.benchmark.get("latency") or {}, profile, check.notes)
    check.notes += [f"after the benchmark: {n}" for n in _heat_notes((check.benchmark or {}).get("conditions_after")
                                                                     or {})]
    check.status = BUDGET if check.violations else PASSED
    return check


def _emulated(settings: dict) -> dict:
    """A short benchmark for an emulator: its latency decides nothing, so a few runs are enough."""
    return {**settings, "warmup": min(settings["warmup"], 1), "runs": min(settings["runs"], EMULATED_RUNS),
            "min_seconds": 0.0}


def _benchmark(client: AgentClient, label: str, artifact: Artifact, data: SampleSet, settings: dict, progress,
               check: ArtifactCheck, info: dict) -> bool:
    """Time the artifact on the device into ``check.benchmark``; False (the step shown ✗) when it did not succeed.
    On a real device that fails the check; on an emulated one it is only noted."""
    reply = _step(progress, f"{label}: benchmark {artifact.file} ({settings['threads']} threads, "
                            f"{settings['runs']} runs)",
                  lambda: client.benchmark(artifact.sha256, threads=settings["threads"], warmup=settings["warmup"],
                                           runs=settings["runs"], min_seconds=settings["min_seconds"],
                                           runner_options=artifact.runner_options, arrays=data.head(1).inputs,
                                           timeout_s=settings["timeout_s"]))
    check.benchmark = reply
    if reply.get("status") == "ok":
        return True
    error = run_failure(client.url, f"benchmark of {artifact.file}", reply, settings["timeout_s"])
    if info.get("emulated"):
        check.notes.append(f"emulated device: no latency figures ({error.message}); the outputs were checked")
        return False
    error.hint = missing_op_hint(reply.get("error") or "", info) or error.hint
    check.fail(error, status=reply.get("status") or "error")
    return False


def _outputs(client: AgentClient, label: str, artifact: Artifact, data: SampleSet, settings: dict, progress,
             check: ArtifactCheck) -> list | None:
    """The device's outputs for every sample, or None with ``check`` failed (the step shown ✗)."""
    reply = _step(progress, f"{label}: inference of {artifact.file} on {len(data)} samples",
                  lambda: client.infer_raw(artifact.sha256, data.inputs, threads=settings["threads"],
                                           runner_options=artifact.runner_options, timeout_s=settings["timeout_s"]))
    if reply.get("status") != "ok":
        check.fail(run_failure(client.url, f"inference of {artifact.file}", reply, settings["timeout_s"]),
                   status=reply.get("status") or "error")
        return None
    return _per_sample(outputs_of(reply), artifact, len(data))


class _Unsuccessful(Exception):
    """Raised inside a progress step whose agent call answered with a failure, so the step is shown ✗."""


def _step(progress, label: str, call) -> dict:
    """``call()`` as a progress step; a reply whose status is not ``ok`` is returned with the step shown ✗."""
    reply: dict = {}
    try:
        with progress.step(label):
            reply = call()
            if reply.get("status") != "ok":
                raise _Unsuccessful
    except _Unsuccessful:
        pass
    return reply


def missing_op_hint(error: str, info: dict) -> str | None:
    """What to do when the device's runtime build lacks an op this host's build has (None: not that failure)."""
    match = next((m for m in (pattern.search(error) for pattern in _MISSING_OP) if m), None)
    if match is None:
        return None
    op = match.group("op")
    domain = match.groupdict().get("domain") or _X86_ONLY_OPS.get(op)
    named = f"{domain}:{op}" if domain else op
    runtime = (info.get("runtimes") or {}).get("onnxruntime", "?")
    host = platform.machine()
    hint = (f"the device's ONNX Runtime {runtime} ({info.get('arch')}) has no kernel for {named}, which this "
            f"host's build ({host}) runs: ")
    if op in _X86_ONLY_OPS:
        return hint + ("it comes from saving a graph optimized at ONNX Runtime's `all` level on x86 (NCHWc layout); "
                       "export with graph_optimization = \"basic\" (portable) and let the device optimize at load")
    return hint + "replace that op in the model, or choose a precision or format whose graph does not use it"


def _per_sample(outputs: list[np.ndarray], artifact: Artifact, count: int) -> list[list[np.ndarray]]:
    """The device's stacked outputs cut into per-sample outputs shaped like the host's."""
    if len(outputs) != len(artifact.output_names):
        raise ValueError(f"the device returned {len(outputs)} outputs, the host runner has "
                         f"{len(artifact.output_names)} ({artifact.output_names})")
    per_output = []
    for index, stacked in enumerate(outputs):
        shape = artifact.host_outputs[0][index].shape
        if stacked.shape == (count, *shape):
            per_output.append([stacked[i] for i in range(count)])
        elif shape and stacked.shape == (count * shape[0], *shape[1:]):
            per_output.append([stacked[i * shape[0]:(i + 1) * shape[0]] for i in range(count)])
        else:
            raise ValueError(f"output {index} has shape {list(stacked.shape)} for {count} samples, but one sample's "
                             f"output on the host has shape {list(shape)}")
    return [[per_output[o][s] for o in range(len(outputs))] for s in range(count)]


def _latency_violations(latency: dict, profile, notes: list[str]) -> list[str]:
    violations = []
    for key, budget in (("p50_ms", profile.latency.p50_ms), ("p90_ms", profile.latency.p90_ms)):
        measured = latency.get(key)
        if budget is None or measured is None:
            continue
        if not math.isfinite(measured) or measured > budget:
            violations.append(f"{key[:3]} latency {measured:.4g} ms > budget {budget:g} ms")
        interval = latency.get("p50_ci_ms") if key == "p50_ms" else None
        if interval and interval[0] <= budget <= interval[1]:
            notes.append(f"the p50 budget {budget:g} ms lies inside the median's confidence interval "
                         f"[{interval[0]:.4g}, {interval[1]:.4g}] ms: the verdict is marginal; raise --runs")
    return violations


def _device_notes(info: dict, profile, threads: int) -> list[str]:
    """Why a device's numbers may mislead: another architecture, frequency scaling, heat, throttling, load."""
    notes = []
    if info.get("emulated"):
        evidence = "; ".join((info.get("emulation") or {}).get("evidence") or []) or "the agent says so"
        notes.append(f"emulated device ({evidence}): its latency is the emulator's, not the target's; it is shown "
                     "for information, never checked against the latency budget and never decides a choice")
    arch = normalized_arch(info.get("arch"))
    if profile.arch != "any" and arch != profile.arch:
        notes.append(f"the artifact was built for {profile.arch} (target {profile.name}) but this device is {arch}")
    cores = info.get("cores")
    if cores and threads > cores:
        notes.append(f"{threads} threads on {cores} cores: the benchmark oversubscribes the CPU")
    conditions = info.get("conditions") or {}
    governor = conditions.get("governor")
    if governor and governor != "performance":
        notes.append(f"CPU governor is '{governor}', not 'performance': latency varies with frequency scaling")
    notes += _heat_notes(conditions)
    load = conditions.get("load_1min")
    if load is not None and cores and load > cores / 2:
        notes.append(f"load average {load:.2f} on {cores} cores: other work competes with the benchmark")
    return notes


def _heat_notes(conditions: dict) -> list[str]:
    notes = []
    if conditions.get("throttled") not in (None, "0x0", "0"):
        notes.append(f"the device reports throttling (get_throttled={conditions['throttled']})")
    temperature = conditions.get("temperature_c")
    if temperature is not None and temperature >= HOT_C:
        notes.append(f"the CPU is at {temperature:.0f} °C: it may throttle")
    return notes


def _error_dict(error: EdgekitError) -> dict:
    return {"type": type(error).__name__, "message": error.message, "hint": error.hint,
            "exit_code": error.exit_code, "status_code": getattr(error, "status_code", None)}


