"""Target profiles: TOML data in ``targets/`` (or any path), validated by a strict pydantic model."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, ValidationInfo, field_validator

from .errors import InputError, TargetError
from .files import read_toml, regular_file
from .runtime import registry

BUILTIN_TARGETS_DIRS = (
    Path(__file__).resolve().parent.parent / "targets",  # source checkout / editable install
    Path(__file__).resolve().parent / "_targets",  # wheel install (force-included)
)


class Precision(str, Enum):
    """``int8`` is resolved per model kind when the graph is known (``exporter/recipes.py``); ``int8_static`` and
    ``int8_dynamic`` pin the method."""

    fp32 = "fp32"
    fp16 = "fp16"
    bf16 = "bf16"  # OpenVINO only: the CPU plugin's bf16 execution (AMX, AVX-512 BF16), where the CPU has it
    int8 = "int8"
    int8_static = "int8_static"
    int8_dynamic = "int8_dynamic"
    int8_bf16 = "int8_bf16"  # OpenVINO only: its static INT8 IR, the float remainder run in bf16 where the CPU has it


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class QuantizationSettings(_Strict):
    """How static/dynamic INT8 is produced. The data types matter as much as the method."""

    calibration: Literal["minmax", "entropy", "percentile"] = "minmax"
    calibration_samples: int = Field(128, ge=1, le=100_000)
    activation_type: Literal["uint8", "int8"] = "uint8"
    weight_type: Literal["int8", "uint8"] = "int8"
    per_channel: StrictBool = True
    reduce_range: StrictBool | Literal["auto"] = "auto"

    def reduce_range_for(self, method: str, arch: str) -> bool:
        """Whether to quantize weights to 7 bits. ``auto``: for dynamic INT8 with signed weights on x86 (or any
        arch), yes: ONNX Runtime's u8s8 MatMulInteger saturates on AVX2 CPUs without VNNI (cosine 0.89-0.91
        against FP32 on a tiny MLP on a Zen 3 EPYC, 0.9998 with 7-bit weights). Static QDQ keeps 8 bits: its
        activation ranges are calibrated, and the gate checks the result on real inputs."""
        if self.reduce_range != "auto":
            return self.reduce_range
        return method == "dynamic" and self.weight_type == "int8" and arch in ("x86_64", "any")


class AccuracyBudget(_Strict):
    """Limits an artifact must meet on validation inputs; ``None`` disables a check."""

    cosine_min: float | None = Field(0.99, ge=-1.0, le=1.0)
    top1_agreement_min: float | None = Field(None, ge=0.0, le=1.0)
    max_abs_error: float | None = Field(None, ge=0.0)
    label_accuracy_drop_max: float | None = Field(None, ge=0.0, le=1.0)


class LatencyBudget(_Strict):
    """Latency limits on the device (used by validate/compare)."""

    p50_ms: float | None = Field(None, gt=0)
    p90_ms: float | None = Field(None, gt=0)


class TargetProfile(_Strict):
    """Where an artifact runs: formats, precisions, threads, opset, quantization and budgets."""

    name: str
    description: str = ""
    arch: Literal["x86_64", "arm64", "armv7", "any"] = "any"
    formats: list[str] = Field(default_factory=lambda: ["onnx"], min_length=1)  # routes (exporter/routes/)
    precisions: list[Precision] = Field(min_length=1)
    threads: int = Field(1, ge=1, le=256)
    opset: int = Field(18, ge=13, le=23)
    graph_optimization: Literal["disabled", "basic"] = "basic"
    channels_last_io: StrictBool = False
    quantization: QuantizationSettings = QuantizationSettings()
    accuracy: AccuracyBudget = AccuracyBudget()
    latency: LatencyBudget = LatencyBudget()

    @field_validator("formats", "precisions")
    @classmethod
    def _no_repeats(cls, values: list) -> list:
        repeated = sorted({str(getattr(v, "value", v)) for v in values if values.count(v) > 1})
        if repeated:
            raise ValueError(f"lists {', '.join(repeated)} more than once (each builds one candidate)")
        return values

    @field_validator("formats")
    @classmethod
    def _known_runtime_on_arch(cls, values: list[str], info: ValidationInfo) -> list[str]:
        """Every format is a registered runtime that runs on the target's architecture; ``auto`` is a mode."""
        known = registry.formats()
        if "auto" in values:
            raise ValueError(f"auto is a selection mode, not a format: list the formats to build ({', '.join(known)})"
                             " and the export builds them all and chooses (`--format auto`, the default when a "
                             "profile lists several)")
        unknown = [v for v in values if v not in known]
        if unknown:
            raise ValueError(f"unknown format(s) {', '.join(unknown)}; the formats are: {', '.join(known)}")
        arch = info.data.get("arch")
        for name in values:
            runtime = registry.runtime(name)
            if runtime.archs is not None and arch not in (*runtime.archs, "any", None):
                there = [r.format for r in registry.runtimes() if r.archs is None or arch in r.archs]
                raise ValueError(f"{name} runs on {', '.join(runtime.archs)} here, and this target is {arch}: "
                                 f"{runtime.archs_why}; use one that runs there: {', '.join(there)}")
        return values

    def with_accuracy(self, **overrides: float | None) -> "TargetProfile":
        """A copy with some accuracy budget fields replaced (CLI overrides)."""
        given = {k: v for k, v in overrides.items() if v is not None}
        if not given:
            return self
        try:
            budget = AccuracyBudget.model_validate({**self.accuracy.model_dump(), **given})
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])} {e['input']!r}: {e['msg']}"
                                 for e in exc.errors())
            raise InputError(f"accuracy budget override: {problems}",
                             hint="cosine in [-1, 1], top-1 agreement in [0, 1], max abs error >= 0") from None
        return self.model_copy(update={"accuracy": budget})


_MACHINE_ARCH = {"aarch64": "arm64", "armv7l": "armv7", "amd64": "x86_64"}


def normalized_arch(machine: str | None) -> str:
    """A machine name as ``uname -m`` or an agent reports it (``aarch64``), in the profiles' words (``arm64``)."""
    machine = str(machine).lower()
    return _MACHINE_ARCH.get(machine, machine)


def builtin_target_files() -> dict[str, Path]:
    """Name -> file of every bundled profile."""
    found: dict[str, Path] = {}
    for folder in BUILTIN_TARGETS_DIRS:
        if folder.is_dir():
            for path in sorted(folder.glob("*.toml")):
                found.setdefault(path.stem, path)
    return found


def load_target(name_or_path: str | Path) -> TargetProfile:
    """Load a bundled profile by name, or a user profile from a ``.toml`` path."""
    text = str(name_or_path)
    builtin = builtin_target_files()
    if text in builtin:
        return _load_file(builtin[text])
    path = Path(text)
    if path.suffix.lower() == ".toml" or path.exists():
        try:
            regular_file(path, "target profile file")
        except InputError as exc:
            raise TargetError(exc.message, hint="check the path to your .toml profile") from None
        return _load_file(path)
    valid = ", ".join(sorted(builtin)) or "(none found)"
    raise TargetError(f"unknown target '{text}'; valid targets: {valid}",
                      hint="pass one of those names or a path to your own profile .toml")


def _load_file(path: Path) -> TargetProfile:
    try:
        data = read_toml(path, "the profile")
    except InputError as exc:
        raise TargetError(exc.message, hint=exc.hint) from exc.__cause__
    data.setdefault("name", path.stem)
    try:
        return TargetProfile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"field '{'.'.join(str(p) for p in err['loc']) or '<root>'}': {err['msg']}" for err in exc.errors()
        )
        raise TargetError(f"{path}: invalid target profile: {problems}",
                          hint="see `edgekit targets show x86` for a valid profile") from exc
