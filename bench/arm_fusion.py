"""Which int8 data types fuse into integer kernels in ONNX Runtime's ARM64 build, against this host's build.

For each activation/weight pairing, the model is quantized to static INT8 QDQ by edgekit's own step (the rpi
profile's settings, types overridden), then loaded with every ONNX Runtime fusion twice: on this host, and in the
emulated ARM64 userland of ``scripts/arm64-device.sh`` (the real aarch64 wheel of ONNX Runtime, run under
qemu-user). Each session's optimized graph is saved and counted here: integer kernels (QLinear*, QGemm, …) and
compute ops left in float. Fusion is decided when the session is built, by the build's kernel registry, so
emulation changes nothing in these counts; it says nothing about speed, which this script does not measure.

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
# run inside the ARM64 userland with its own edgekit: every QDQ model in the folder, optimized at the `all` level
IN_USERLAND = """
import sys, pathlib
from edgekit.runtime.onnxrt import OnnxRunner
for path in sorted(pathlib.Path(sys.argv[1]).glob("*.qdq.onnx")):
    OnnxRunner(path, threads=1, optimization="all", optimized_model_path=path.with_suffix(".arm64.onnx"))
"""


def fusion(path: Path) -> dict:
    model = onnx.load(str(path))
    counts = op_counts(model)
    return {"integer": sum(n for op, n in counts.items() if op.startswith("QLinear") or op in INTEGER_OPS),
            "float_compute": sum(counts.get(op, 0) for op in FLOAT_COMPUTE_OPS),
            "integer_ops": {op: n for op, n in sorted(counts.items()) if op.startswith("QLinear") or op in INTEGER_OPS}}


def quantized_models(name: str, folder: Path) -> list[tuple[str, Path]]:
    """The model's FP32 ONNX (edgekit's export chain) and one static INT8 QDQ file per pairing. Calibration uses
    random inputs: which ops fuse depends on the data types, not on the scales."""
    from edgekit.data import synthetic_samples
    from edgekit.exporter.pipeline import export
    from edgekit.exporter.steps import Artifact, StepContext
    from edgekit.exporter.steps.quantize_static import QuantizeStatic
    from edgekit.specs import InputSpec
    from edgekit.targets import load_target

    profile = load_target("rpi")
    result = export(MODELS[name], profile.model_copy(update={"formats": ["onnx"], "precisions": ["fp32"]}),
                    out=folder / f"{name}-fp32", benchmark=False, rescue=False,
                    accuracy={"cosine_min": 0.0, "top1_agreement_min": 0.0})
    fp32 = result.out_dir / "model.fp32.onnx"
    specs = [InputSpec(i["name"], tuple(i["shape"]), i["dtype"]) for i in result.manifest["inputs"]]
    calibration = synthetic_samples(specs, 32)
    built = []
    for activation, weight in PAIRINGS:
        settings = profile.quantization.model_copy(update={"activation_type": activation, "weight_type": weight})
        context = StepContext(profile=profile.model_copy(update={"quantization": settings}), inputs=specs,
                              calibration=calibration)
        out = folder / f"{name}.a{activation}-w{weight}.qdq.onnx"
        QuantizeStatic().apply(Artifact(fp32, "onnx", "fp32"), out, context)
        built.append((f"a={activation} w={weight}", out))
    return built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="digits,mobilenet_v2", help=f"comma-separated: {', '.join(MODELS)}")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    from edgekit.runtime.onnxrt import OnnxRunner

    with tempfile.TemporaryDirectory(prefix="edgekit-arm-fusion-") as scratch:
        work = Path(scratch)
        files = [(name, label, path) for name in args.models.split(",") for label, path in
                 quantized_models(name, work)]
        for _, _, path in files:
            OnnxRunner(path, threads=1, optimization="all", optimized_model_path=path.with_suffix(".host.onnx"))
        rootfs = Path(subprocess.run([str(SCRIPT), "rootfs"], capture_output=True, text=True,
                                     check=True).stdout.strip())
        shared = Path(tempfile.mkdtemp(prefix="edgekit-arm-fusion-", dir=rootfs / "var" / "tmp"))
        try:
            for _, _, path in files:
                shutil.copy(path, shared / path.name)
            inside = "/" + shared.relative_to(rootfs).as_posix()
            run = subprocess.run([str(SCRIPT), "run", "python", "-c", IN_USERLAND, inside], capture_output=True,
                                 text=True)
            if run.returncode:
                sys.stderr.write(run.stderr)
                return 1
            arch = subprocess.run([str(SCRIPT), "run", "python", "-c", "import onnxruntime, platform; "
                                   "print(platform.machine(), onnxruntime.__version__)"],
                                  capture_output=True, text=True, check=True).stdout.split()
            rows = [{"model": name, "types": label, "host": fusion(path.with_suffix(".host.onnx")),
                     "arm64": fusion(shared / path.with_suffix(".arm64.onnx").name)} for name, label, path in files]
        finally:
            shutil.rmtree(shared, ignore_errors=True)
    import platform

    import onnxruntime

    print(f"ONNX Runtime {onnxruntime.__version__} on this {platform.machine()} host vs {arch[1]} on {arch[0]} "
          "(emulated userland): static INT8 QDQ, per-channel, every fusion on")
    print(f"{'model':<14}{'types':<20}{'host int/float':>16}{'arm64 int/float':>17}   arm64 integer ops")
    for row in rows:
        host, arm = row["host"], row["arm64"]
        print(f"{row['model']:<14}{row['types']:<20}{host['integer']:>8}/{host['float_compute']:<7}"
              f"{arm['integer']:>9}/{arm['float_compute']:<7}   {arm['integer_ops']}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "arm64": arch}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
