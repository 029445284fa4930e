"""Which int8 data types fuse into integer kernels in ONNX Runtime's ARM64 build, against this host's build.

For each activation/weight pairing, the model is quantized to static INT8 QDQ by edgekit's own step (the rpi
profile's settings, types overridden), then loaded with every ONNX Runtime fusion twice: on this host, and in the
emulated ARM64 userland of ``scripts/arm64-device.sh`` (the real aarch64 wheel of ONNX Runtime, run under
qemu-user, Cortex-A72 by default). Each session's optimized graph is saved and counted here: integer kernels
(QLinear*, QGemm, …) and compute ops left in float. Fusion is decided when the session is built, by the build's
kernel registry, so emulation changes nothing in these counts. Both builds also run the validation inputs, and
each INT8 model's outputs are compared with the FP32 model's on this host (cosine min): the integer kernels'
arithmetic differs between the builds (x86 AVX2 without VNNI saturates u8×s8 pairs). No speed is measured.

    sudo .venv/bin/python bench/arm_fusion.py [--models digits,mobilenet_v2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edgekit.exporter.onnx_graph import op_counts  # noqa: E402
from edgekit.exporter.steps.quantize_static import FLOAT_COMPUTE_OPS, INTEGER_OPS  # noqa: E402

SCRIPT = REPO / "scripts" / "arm64-device.sh"
PAIRINGS = (("uint8", "int8"), ("int8", "int8"), ("uint8", "uint8"))
MODELS = {"digits": f"{REPO}/samples/digits/model.py:build",
          "mobilenet_v2": f"{REPO}/bench/models.py:mobilenet_v2_style",
          "resnet18": f"{REPO}/bench/models.py:resnet18_style"}
# run inside the ARM64 userland with its own edgekit: every QDQ model in the folder, optimized at the `all` level,
# saved, and run on the model's inputs (NAME.inputs.npz) with its outputs saved beside it
IN_USERLAND = """
import sys, pathlib, numpy as np
from edgekit.runtime.onnxrt import OnnxRunner
for path in sorted(pathlib.Path(sys.argv[1]).glob("*.qdq.onnx")):
    runner = OnnxRunner(path, threads=1, optimization="all", optimized_model_path=path.with_suffix(".arm64.onnx"))
    inputs = np.load(path.parent / (path.name.split(".")[0] + ".inputs.npz"))
    count = len(inputs[runner.input_names[0]])
    outputs = [runner.run({n: inputs[n][i:i + 1] for n in runner.input_names})[0] for i in range(count)]
    np.save(path.with_suffix(".arm64.npy"), np.concatenate(outputs))
"""
VALIDATION_SAMPLES = 64


def fusion(path: Path) -> dict:
    model = onnx.load(str(path))
    counts = op_counts(model)
    return {"integer": sum(n for op, n in counts.items() if op.startswith("QLinear") or op in INTEGER_OPS),
            "float_compute": sum(counts.get(op, 0) for op in FLOAT_COMPUTE_OPS),
            "integer_ops": {op: n for op, n in sorted(counts.items()) if op.startswith("QLinear") or op in INTEGER_OPS}}


def quantized_models(name: str, folder: Path) -> tuple[list[tuple[str, Path]], Path, dict[str, np.ndarray]]:
    """The model's FP32 ONNX (edgekit's export chain), one static INT8 QDQ file per pairing and the inputs to run:
    the digits sample's own calibration and validation data, random inputs for the others (which ops fuse
    depends on the data types, not on the scales)."""
    from edgekit.data import load_samples, synthetic_samples
    from edgekit.exporter.pipeline import export
    from edgekit.exporter.steps import Artifact, StepContext
    from edgekit.exporter.steps.quantize_static import QuantizeStatic
    from edgekit.specs import InputSpec
    from edgekit.targets import Precision, load_target

    profile = load_target("rpi")
    result = export(MODELS[name], profile.model_copy(update={"formats": ["onnx"], "precisions": [Precision.fp32]}),
                    out=folder / f"{name}-fp32", benchmark=False, rescue=False,
                    accuracy={"cosine_min": 0.0, "top1_agreement_min": 0.0})
    fp32 = result.out_dir / "model.fp32.onnx"
    specs = [InputSpec(i["name"], tuple(i["shape"]), i["dtype"]) for i in result.manifest["inputs"]]
    if name == "digits":
        calibration = load_samples(REPO / "samples" / "digits" / "calib.npz", specs)
        validation = load_samples(REPO / "samples" / "digits" / "val.npz", specs).head(VALIDATION_SAMPLES)
    else:
        calibration, validation = synthetic_samples(specs, 32), synthetic_samples(specs, 8)
    inputs = dict(validation.inputs)
    built = []
    for activation, weight in PAIRINGS:
        settings = profile.quantization.model_copy(update={"activation_type": activation, "weight_type": weight})
        context = StepContext(profile=profile.model_copy(update={"quantization": settings}), inputs=specs,
                              calibration=calibration)
        out = folder / f"{name}.a{activation}-w{weight}.qdq.onnx"
        QuantizeStatic().apply(Artifact(fp32, "onnx", "fp32"), out, context)
        built.append((f"a={activation} w={weight}", out))
    return built, fp32, inputs


def host_outputs(path: Path, inputs: dict[str, np.ndarray], optimized: Path | None = None) -> np.ndarray:
    from edgekit.runtime.onnxrt import OnnxRunner

    runner = OnnxRunner(path, threads=1, optimization="all", optimized_model_path=optimized)
    count = len(next(iter(inputs.values())))
    return np.concatenate([runner.run({n: inputs[n][i:i + 1] for n in runner.input_names})[0] for i in range(count)])


def cosine_min(reference: np.ndarray, outputs: np.ndarray) -> float:
    a, b = reference.reshape(len(reference), -1), outputs.reshape(len(outputs), -1)
    return float(((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))).min())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="digits,mobilenet_v2", help=f"comma-separated: {', '.join(MODELS)}")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    rootfs = Path(subprocess.run([str(SCRIPT), "rootfs"], capture_output=True, text=True, check=True).stdout.strip())
    if not (rootfs / ".edgekit-rootfs").is_file():
        sys.exit(f"no emulated ARM64 userland at {rootfs}: run `sudo scripts/arm64-device.sh build` first")
    with tempfile.TemporaryDirectory(prefix="edgekit-arm-fusion-") as scratch:
        work = Path(scratch)
        files, references, inputs = [], {}, {}
        for name in args.models.split(","):
            built, fp32, inputs[name] = quantized_models(name, work)
            references[name] = host_outputs(fp32, inputs[name])
            files += [(name, label, path) for label, path in built]
        shared = Path(tempfile.mkdtemp(prefix="edgekit-arm-fusion-", dir=rootfs / "var" / "tmp"))
        try:
            for name, _, path in files:
                shutil.copy(path, shared / path.name)
                np.savez(shared / f"{name}.inputs.npz", **inputs[name])
            inside = "/" + shared.relative_to(rootfs).as_posix()
            run = subprocess.run([str(SCRIPT), "run", "python", "-c", IN_USERLAND, inside], capture_output=True,
                                 text=True)
            if run.returncode:
                sys.stderr.write(run.stderr)
                return 1
            probe = "import onnxruntime, platform; print(platform.machine(), onnxruntime.__version__)"
            arch = subprocess.run([str(SCRIPT), "run", "python", "-c", probe], capture_output=True, text=True,
                                  check=True).stdout.split()
            rows = []
            for name, label, path in files:
                host = host_outputs(path, inputs[name], path.with_suffix(".host.onnx"))
                arm = np.load(shared / path.with_suffix(".arm64.npy").name)
                rows.append({"model": name, "types": label, "host": fusion(path.with_suffix(".host.onnx")),
                             "arm64": fusion(shared / path.with_suffix(".arm64.onnx").name),
                             "cosine_min_vs_fp32": {"host": cosine_min(references[name], host),
                                                    "arm64": cosine_min(references[name], arm)}})
        finally:
            shutil.rmtree(shared, ignore_errors=True)
    import platform

    import onnxruntime

    print(f"ONNX Runtime {onnxruntime.__version__} on this {platform.machine()} host vs {arch[1]} on {arch[0]} "
          "(emulated userland): static INT8 QDQ, per-channel, every fusion on; cosine min vs this host's FP32")
    print(f"{'model':<14}{'types':<20}{'host int/float':>15}{'arm64 int/float':>17}{'host cos':>10}{'arm64 cos':>11}"
          "   arm64 integer ops")
    for row in rows:
        host, arm, cos = row["host"], row["arm64"], row["cosine_min_vs_fp32"]
        print(f"{row['model']:<14}{row['types']:<20}{host['integer']:>8}/{host['float_compute']:<6}"
              f"{arm['integer']:>10}/{arm['float_compute']:<6}{cos['host']:>10.5f}{cos['arm64']:>11.5f}   "
              f"{arm['integer_ops']}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "arm64": arch}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
