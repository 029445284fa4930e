"""Mutation fuzzer for the agent's upload-and-benchmark path: damaged ONNX/TFLite files must never kill it.

Each case takes a valid seed model, applies 1-4 seeded random mutations (bit flips, bytes overwritten with
0x00/0xFF/0x7F/0x80 or random values, truncation, chunk duplication/deletion, random bytes inserted),
uploads the mutant under its sha256, and when the agent accepts it, benchmarks it (3 runs, small timeout),
runs inference once and deletes it. Every status is counted; an agent death (process exited or health
check failing) or a 5xx answer is a finding, and the mutant that caused it is saved to ``--crash-dir``.

    .venv/bin/python bench/fuzz_agent.py --cases 5000 --seed 1 [--models a.onnx,b.tflite] [--json out.json]

Without ``--models`` the seeds are testkit/models.py:tiny_cnn exported as ONNX, TFLite and OpenVINO IR, FP32 and
static INT8 (needs torch and the tflite extra). The mutators and the campaign are ``testkit.fuzz_agent``, shared
with ``tests/fuzz/test_fuzz_agent.py``, which runs a bounded campaign in CI.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root, for testkit
from testkit import MODELS  # noqa: E402
from testkit.fuzz_agent import Campaign, load_seed, run_mutation_campaign, summary_line  # noqa: E402

# ---------------------------------------------------------------- CLI: long runs with an agent of its own

def export_default_seeds(folder: Path) -> list[Path]:
    """testkit/models.py:tiny_cnn as ONNX, TFLite and OpenVINO IR (bundled), FP32 and static INT8."""
    import edgekit
    from edgekit.quiet import quiet

    ref = f"{MODELS}:tiny_cnn"
    paths = []
    for fmt, suffix in (("onnx", "onnx"), ("tflite", "tflite"), ("openvino", "xml")):
        out = folder / fmt
        with quiet():
            edgekit.export(ref, "x86", out=out, format=fmt, benchmark=False, accuracy={"top1_agreement_min": 0})
        paths += sorted(out.glob(f"model.*.{suffix}"))
    return paths


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000, help="mutants to try (default: 1000)")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the mutations (default: 1)")
    parser.add_argument("--models", help="comma-separated .onnx/.tflite seed files (default: tiny_cnn exported)")
    parser.add_argument("--timeout-s", type=float, default=5.0, help="agent-side timeout of each model run")
    parser.add_argument("--no-v2", action="store_true", help="skip KServe v2 metadata and inference of mutants")
    parser.add_argument("--memory-limit-mb", type=int, default=1024, help="the agent's per-run memory limit")
    parser.add_argument("--crash-dir", type=Path, default=Path("fuzz-findings"),
                        help="where mutants that killed the agent or got a 5xx are saved (default: fuzz-findings)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON to this path")
    args = parser.parse_args(argv)
    if args.cases < 1:
        parser.error("--cases must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from testkit.agent_process import start_agent  # a real agent on a free loopback port

    with tempfile.TemporaryDirectory(prefix="edgekit-fuzz-") as workdir:
        work = Path(workdir)
        paths = ([Path(p) for p in args.models.split(",")] if args.models else export_default_seeds(work / "seeds"))
        seeds = [load_seed(p) for p in paths]
        print(f"fuzz_agent: {args.cases} cases, seed {args.seed}, seeds "
              + ", ".join(f"{s.name} ({len(s.data)} B)" for s in seeds), flush=True)
        agents = []

        def restart():
            if agents:
                agents[-1].stop()
            folder = work / f"agent-{len(agents)}"
            folder.mkdir()
            agents.append(start_agent(folder, "--memory-limit-mb", str(args.memory_limit_mb)))
            return agents[-1]

        def progress(c: Campaign) -> None:
            print(f"  {c.cases} cases, {c.seconds:.0f} s: deaths {c.deaths}, 5xx {c.server_errors}, "
                  f"accepted {c.upload[201] + c.upload[200]}, benchmark {dict(c.benchmark)}", flush=True)

        try:
            counts = run_mutation_campaign(restart(), seeds, args.cases, random.Random(args.seed),
                                           timeout_s=args.timeout_s, crash_dir=args.crash_dir, v2=not args.no_v2,
                                           restart=restart,
                                           progress=progress, progress_every=max(args.cases // 10, 1))
        finally:
            agents[-1].stop()
    print_report(counts)
    if args.json:
        args.json.write_text(json.dumps({"seed": args.seed, "seeds": [s.name for s in seeds], **counts}, indent=2)
                             + "\n")
    return 0 if counts["deaths"] == 0 and counts["server_errors"] == 0 and counts["no_answer"] == 0 else 1


def print_report(counts: dict[str, Any]) -> None:
    print(f"\n{'figure':<22}value")
    for key in ("cases", "deaths", "server_errors", "no_answer", "v2_model_failures", "seconds"):
        print(f"{key:<22}{counts[key]}")
    for key in ("upload", "benchmark", "infer", "v2_metadata", "v2_infer", "delete", "mutators", "per_seed"):
        print(f"{key:<22}" + ", ".join(f"{k} {v}" for k, v in counts[key].items()))
    print("most frequent reasons (uploads refused, runs not ok):")
    for reason, n in counts["reasons"].items():
        print(f"  {n:>6}  {reason}")
    for finding in counts["findings"]:
        print(f"FINDING {finding['kind']} at {finding['step']} ({finding['seed']}, {'+'.join(finding['mutations'])}): "
              f"{finding['detail']} -> {finding['saved_as']}")
    verdict = "PASS" if counts["deaths"] == 0 and counts["server_errors"] == 0 and counts["no_answer"] == 0 else "FAIL"
    print(f"[{verdict}] agent deaths 0 and no 5xx: {summary_line(counts)}")


if __name__ == "__main__":
    sys.exit(main())
