"""The agent's latency figures against an in-process timing loop, and what one request costs on top.

Starts a real agent on loopback (fresh store, its own token) and uploads the digits sample and a
ResNet-18-style network (bench/models.py), both exported to ONNX by ``edgekit.export``. Then, for each
artifact and thread count:

- (a) in process: ``edgekit.runtime.open_runner(path, threads).benchmark(feeds, warmup, runs, min_seconds)``;
- (b) the agent: ``POST /v1/benchmark`` with the same warm-up, runs, minimum time, threads and the same input
  arrays (``inputs_npz_b64``);

alternating (a) and (b) over a few rounds (order rotated), and prints both p50s (median over rounds) and the
agent/in-process ratio (median of the per-round ratios; target within ±5 %). Last, the per-request overhead:
the client's wall time of a tiny ``/v1/benchmark`` and ``/v1/infer`` (1 run, no warm-up) against the
agent's ``wall_s`` (the child process's lifetime), and the ``/v1/health`` round trip.

    .venv/bin/python bench/bench_agent.py [--models digits,resnet18] [--threads 1,2] [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

import edgekit
from edgekit.errors import EdgekitError
from edgekit.quiet import quiet
from edgekit.runtime import open_runner

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the repository root, for testkit
DIGITS = REPO / "samples" / "digits"
MODELS = {  # name: (model reference, export keyword arguments)
    "digits": (f"{DIGITS / 'model.py'}:build", {"calib": DIGITS / "calib.npz", "val": DIGITS / "val.npz"}),
    "resnet18": (f"{REPO / 'bench' / 'models.py'}:resnet18_style", {"rescue": False, "accuracy": {"cosine_min": None}}),
}
WARMUP, RUNS, MIN_SECONDS = 10, 50, 1.0
RATIO_TARGET = 0.05  # the agent's p50 within ±5 % of the in-process loop's
TINY_REPEATS, HEALTH_REPEATS = 10, 50


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help=f"subset of {', '.join(MODELS)} (default: all)")
    parser.add_argument("--artifact", type=Path, action="append", default=[],
                        help="also an existing .onnx/.tflite file (repeatable)")
    parser.add_argument("--precision", default="fp32", help="which exported model to use: fp32, int8_static, …")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts (default: 1,2)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per artifact and threads")
    parser.add_argument("--json", type=Path, help="also write every figure as JSON to this path")
    args = parser.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(args.models) - MODELS.keys())
    if unknown or not (args.models or args.artifact):
        parser.error(f"unknown model(s) {unknown}; choose from {', '.join(MODELS)}")
    args.threads = [int(t) for t in args.threads.split(",")]
    if args.rounds < 1 or min(args.threads) < 1:
        parser.error("--rounds and --threads must be at least 1")
    return args


def export_model(name: str, precision: str, folder: Path) -> Path:
    """``edgekit.export(..., format="onnx", benchmark=False)``; the file of ``precision``."""
    ref, options = MODELS[name]
    out = folder / name
    try:
        with quiet():
            edgekit.export(ref, "x86", out=out, format="onnx", benchmark=False, **options)
    except EdgekitError:  # a failed gate still writes the folder; the float model is what we time
        if not out.is_dir():
            raise
    path = next(out.rglob(f"model.{precision}.onnx"), None)
    if path is None:
        raise SystemExit(f"{name}: no model.{precision}.onnx in {out}")
    return path


def feeds_for(path: Path) -> dict[str, np.ndarray]:
    """Seeded random inputs in the model's own shapes, batch 1: the same arrays for both loops."""
    rng = np.random.default_rng(0)
    feeds = {}
    for name, spec in open_runner(path).input_specs().items():
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in spec["shape"]]
        dtype = np.dtype(spec["dtype"])
        feeds[name] = (rng.standard_normal(shape).astype(dtype) if np.issubdtype(dtype, np.floating)
                       else rng.integers(0, 10, shape).astype(dtype))
    return feeds


def npz_b64(arrays: dict[str, np.ndarray]) -> str:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return base64.b64encode(buffer.getvalue()).decode()


def upload(client: httpx.Client, url: str, path: Path) -> str:
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    response = client.put(f"{url}/v1/artifacts/{digest}", content=data, timeout=300)
    if response.status_code not in (200, 201):
        raise SystemExit(f"upload of {path} refused: {response.status_code} {response.text}")
    return digest


def agent_benchmark(client: httpx.Client, url: str, body: dict) -> dict:
    response = client.post(f"{url}/v1/benchmark", json=body, timeout=body.get("timeout_s", 120) + 30)
    response.raise_for_status()
    reply = response.json()
    if reply["status"] != "ok":
        raise SystemExit(f"agent benchmark failed: {reply}")
    return reply


def compare(client: httpx.Client, url: str, name: str, path: Path, threads: int, rounds: int) -> dict:
    """Alternate the in-process loop and the agent, rotating which goes first; p50 per round for both."""
    digest, feeds = upload(client, url, path), feeds_for(path)
    runner = open_runner(path, threads=threads)
    body = {"digest": digest, "threads": threads, "warmup": WARMUP, "runs": RUNS, "min_seconds": MIN_SECONDS,
            "timeout_s": 300, "inputs_npz_b64": npz_b64(feeds)}
    timers = {"in_process": lambda: runner.benchmark(feeds, WARMUP, RUNS, MIN_SECONDS).to_dict(),
              "agent": lambda: agent_benchmark(client, url, body)["latency"]}
    per_round = {k: [] for k in timers}
    for index in range(rounds):
        order = list(timers) if index % 2 == 0 else list(reversed(timers))
        for key in order:
            per_round[key].append(timers[key]())
    ratios = [a["p50_ms"] / b["p50_ms"] for a, b in zip(per_round["agent"], per_round["in_process"])]
    ratio = statistics.median(ratios)
    return {"model": name, "file": path.name, "size_mb": round(path.stat().st_size / 2**20, 2), "threads": threads,
            "in_process_p50_ms": statistics.median(r["p50_ms"] for r in per_round["in_process"]),
            "agent_p50_ms": statistics.median(r["p50_ms"] for r in per_round["agent"]),
            "ratio": ratio, "ratio_rounds": ratios, "passed": abs(ratio - 1) <= RATIO_TARGET,
            "runs": [r["runs"] for r in per_round["agent"]], "rounds": per_round}


def overhead(client: httpx.Client, url: str, path: Path) -> list[dict]:
    """Client wall time of tiny jobs vs the agent's ``wall_s`` (child lifetime); medians of repeats."""
    digest, feeds = upload(client, url, path), feeds_for(path)
    jobs = {"benchmark (runs=1, warmup=0)": ("/v1/benchmark", {"digest": digest, "runs": 1, "warmup": 0,
                                                                "inputs_npz_b64": npz_b64(feeds)}),
            "infer (1 sample)": ("/v1/infer", {"digest": digest, "inputs_npz_b64": npz_b64(feeds)})}
    walls: dict[str, list[float]] = {label: [] for label in jobs}
    child: dict[str, list[float]] = {label: [] for label in jobs}
    for _ in range(TINY_REPEATS):  # the jobs interleaved, so a busy moment hits both alike
        for label, (endpoint, body) in jobs.items():
            started = time.perf_counter()
            reply = client.post(f"{url}{endpoint}", json=body, timeout=120).json()
            walls[label].append(time.perf_counter() - started)
            if reply["status"] != "ok":
                raise SystemExit(f"tiny {label} failed: {reply}")
            child[label].append(reply["wall_s"])
    return [{"job": label, "request_ms": 1e3 * statistics.median(walls[label]),
             "child_wall_ms": 1e3 * statistics.median(child[label]),
             "outside_child_ms": 1e3 * statistics.median(w - c for w, c in zip(walls[label], child[label])),
             "request_min_ms": 1e3 * min(walls[label])} for label in jobs]


def health_latency(url: str) -> dict:
    """``GET /v1/health`` round trip: httpx on a kept-alive connection, and a new TCP connection each time
    (``http.client``, so no client set-up is counted)."""
    host, port = url.removeprefix("http://").split(":")

    def fresh() -> None:
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            connection.request("GET", "/v1/health")
            if connection.getresponse().status != 200:
                raise SystemExit("health check failed")
        finally:
            connection.close()

    figures = {}
    with httpx.Client() as shared:
        for label, call in (("keep-alive", lambda: shared.get(f"{url}/v1/health").raise_for_status()),
                            ("new connection", fresh)):
            samples = []
            for _ in range(HEALTH_REPEATS):
                started = time.perf_counter()
                call()
                samples.append(time.perf_counter() - started)
            figures[label] = {"median_ms": 1e3 * statistics.median(samples),
                              "p90_ms": 1e3 * float(np.percentile(samples, 90)), "n": len(samples)}
    return figures


def environment() -> dict:
    import onnxruntime

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cpus": os.cpu_count(), "python": platform.python_version(),
            "onnxruntime": onnxruntime.__version__, "edgekit": edgekit.__version__,
            "load_1min_at_start": round(os.getloadavg()[0], 2)}


def print_report(env: dict, comparisons: list[dict], tiny: list[dict], health: dict) -> None:
    print(f"\n== agent p50 vs in-process loop (warm-up {WARMUP}, >= {RUNS} runs and {MIN_SECONDS} s; same inputs) ==")
    print(f"{'model':<10}{'file':<24}{'MB':>7}{'threads':>8}{'in-proc p50 ms':>16}{'agent p50 ms':>14}"
          f"{'agent/in-proc':>15}  rounds                 target ±{RATIO_TARGET:.0%}")
    for c in comparisons:
        rounds = " ".join(f"{r:.3f}" for r in c["ratio_rounds"])
        print(f"{c['model']:<10}{c['file']:<24}{c['size_mb']:>7}{c['threads']:>8}{c['in_process_p50_ms']:>16.4f}"
              f"{c['agent_p50_ms']:>14.4f}{c['ratio']:>15.3f}  {rounds:<22} {'PASS' if c['passed'] else 'MISS'}")
    print("\n== per-request overhead (tiny jobs on the first model; medians of "
          f"{TINY_REPEATS}) ==")
    print(f"{'job':<30}{'request ms':>12}{'child wall_s ms':>17}{'outside child ms':>18}{'fastest request ms':>20}")
    for t in tiny:
        print(f"{t['job']:<30}{t['request_ms']:>12.1f}{t['child_wall_ms']:>17.1f}{t['outside_child_ms']:>18.1f}"
              f"{t['request_min_ms']:>20.1f}")
    print("  (child wall_s: the worker process from spawn to exit: interpreter start, imports, model load, run)")
    print(f"\n== GET /v1/health round trip ({HEALTH_REPEATS} requests) ==")
    for label, h in health.items():
        print(f"{label:<16} median {h['median_ms']:.2f} ms, p90 {h['p90_ms']:.2f} ms")
    passed = all(c["passed"] for c in comparisons)
    print(f"\n[{'PASS' if passed else 'MISS'}] agent p50 within ±{RATIO_TARGET:.0%} of the in-process loop: "
          + "; ".join(f"{c['model']}/{c['threads']}t {c['ratio']:.3f}" for c in comparisons))
    spare = env["cpus"] - env["load_1min_at_start"]
    if spare < max(c["threads"] for c in comparisons) - 0.5:
        print(f"note: 1-min load {env['load_1min_at_start']} on {env['cpus']} CPUs at the start: other processes "
              "compete with the timed threads, so the ratios are noisier than on an idle device")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from testkit.agent_process import start_agent  # a real agent on a free loopback port

    env = environment()
    print("bench_agent: " + ", ".join(f"{k} {v}" for k, v in env.items()) + f"; rounds {args.rounds}", flush=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgekit-bench-agent-") as workdir:
        work = Path(workdir)
        paths = [(name, export_model(name, args.precision, work / "models")) for name in args.models]
        paths += [(p.stem, p) for p in args.artifact]
        print("artifacts: " + ", ".join(f"{n} {p.name} ({p.stat().st_size / 2**20:.2f} MB)" for n, p in paths),
              flush=True)
        (work / "agent").mkdir()
        agent = start_agent(work / "agent")
        try:
            with httpx.Client(headers=agent.headers) as client:
                comparisons = []
                for name, path in paths:
                    for threads in args.threads:
                        comparisons.append(compare(client, agent.url, name, path, threads, args.rounds))
                        c = comparisons[-1]
                        print(f"  {name} {threads}t: in-process {c['in_process_p50_ms']:.4f} ms, agent "
                              f"{c['agent_p50_ms']:.4f} ms, ratio {c['ratio']:.3f}", flush=True)
                tiny = overhead(client, agent.url, paths[0][1])
            health = health_latency(agent.url)
        finally:
            agent.stop()
    print_report(env, comparisons, tiny, health)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"environment": env, "warmup": WARMUP, "runs": RUNS,
                                         "min_seconds": MIN_SECONDS, "comparisons": comparisons,
                                         "overhead": tiny, "health": health}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
