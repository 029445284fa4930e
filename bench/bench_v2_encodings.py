"""KServe v2 inference on the agent with JSON tensors against the binary tensor extension: bytes and latency.

Starts a real agent on loopback, uploads the digits sample's FP32 and INT8 ONNX artifacts and a 224×224 network
(bench/models.py's ResNet-18-style, FP32), all exported by ``edgekit.export`` (``bench_agent.export_model``), and
for each model times, alternating over a few rounds (order rotated), four clients on the same input:

- tritonclient HTTP with JSON tensors both ways (``binary_data=False``, JSON outputs asked for);
- tritonclient HTTP with its defaults (binary input, ``binary_data_output``);
- edgekit's own v2 client (``edgekit compare --cloud URL``) with JSON tensors, and with binary tensors.

Each call is timed from request sent to output arrays decoded. It prints the request and reply sizes, the
client-side p50 (median over rounds), the agent's own compute p50 (``parameters.edgekit_compute_ms``) and the
JSON/binary ratios, and checks that every client's outputs equal this host's ONNX Runtime run.

    .venv/bin/python bench/bench_v2_encodings.py [--models digits,resnet18] [--rounds 3] [--calls 30] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the repository root, for testkit
from bench_agent import export_model, feeds_for, upload  # noqa: E402  (bench/bench_agent.py, beside this file)

CLIENTS = ("triton-json", "triton-binary", "edgekit-json", "edgekit-binary")
PRECISIONS = {"digits": ("fp32", "int8_static"), "resnet18": ("fp32",)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="digits,resnet18", help="subset of digits, resnet18 (default: both)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default: 3)")
    parser.add_argument("--calls", type=int, default=30, help="timed calls per client and round (default: 30)")
    parser.add_argument("--json", type=Path, help="also write every figure as JSON to this path")
    args = parser.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    if set(args.models) - PRECISIONS.keys() or args.rounds < 1 or args.calls < 1:
        parser.error("--models: digits and/or resnet18; --rounds and --calls at least 1")
    return args


class Callers:
    """One call per client kind on one model: returns (outputs in the model's order, compute ms, bytes in/out)."""

    def __init__(self, url: str, token: str, digest: str, feeds: dict[str, np.ndarray], output_names: list[str]):
        import tritonclient.http as triton

        from edgekit.evaluate.cloud.v2_client import V2Client, decode_outputs, encode_request

        self.triton_module, self.decode = triton, decode_outputs
        self.triton = triton.InferenceServerClient(url.removeprefix("http://"), network_timeout=120)
        self.v2 = V2Client(url, token, timeout=120)
        self.headers = {"Authorization": f"Bearer {token}"}
        self.digest, self.feeds, self.names = digest, feeds, output_names
        self.bodies = {binary: encode_request(feeds, binary) for binary in (False, True)}

    def call(self, client: str) -> tuple[list[np.ndarray], float, int, int]:
        binary = client.endswith("binary")
        if client.startswith("triton"):
            return self._triton(binary)
        body, headers = self.bodies[binary]
        reply, tail, size = self.v2.infer(f"/v2/models/{self.digest}", body, headers)
        return self.decode(reply, tail, self.names), reply["parameters"]["edgekit_compute_ms"], len(body), size

    def _triton(self, binary: bool) -> tuple[list[np.ndarray], float, int, int]:
        triton, tensors = self.triton_module, []
        for name, array in self.feeds.items():
            tensor = triton.InferInput(name, list(array.shape), "FP32")
            tensor.set_data_from_numpy(array, binary_data=binary)
            tensors.append(tensor)
        outputs = None if binary else [triton.InferRequestedOutput(n, binary_data=False) for n in self.names]
        result = self.triton.infer(self.digest, tensors, outputs=outputs, headers=dict(self.headers))
        arrays = [result.as_numpy(n) for n in self.names]
        return arrays, result.get_response()["parameters"]["edgekit_compute_ms"], 0, 0

    def close(self) -> None:
        self.triton.close()
        self.v2.close()


def measure(callers: Callers, host: list[np.ndarray], rounds: int, calls: int) -> dict:
    """p50 per client and round, alternating clients (order rotated each round); sizes and output agreement."""
    figures = {c: {"p50_ms": [], "compute_p50_ms": [], "max_abs_error": 0.0} for c in CLIENTS}
    for client in CLIENTS:  # warm-up, and sizes
        outputs, _, sent, received = callers.call(client)
        figures[client].update(request_bytes=sent or None, reply_bytes=received or None)
    for round_index in range(rounds):
        order = CLIENTS[round_index % len(CLIENTS):] + CLIENTS[:round_index % len(CLIENTS)]
        for client in order:
            wall, compute = [], []
            for _ in range(calls):
                started = time.perf_counter()
                outputs, compute_ms, _, _ = callers.call(client)
                wall.append((time.perf_counter() - started) * 1e3)
                compute.append(compute_ms)
            error = max(float(np.abs(np.asarray(o, np.float32) - h).max()) for o, h in zip(outputs, host))
            figures[client]["max_abs_error"] = max(figures[client]["max_abs_error"], error)
            figures[client]["p50_ms"].append(statistics.median(wall))
            figures[client]["compute_p50_ms"].append(statistics.median(compute))
    for client in CLIENTS:
        figures[client]["rounds_p50_ms"] = [round(v, 3) for v in figures[client]["p50_ms"]]
        figures[client]["p50_ms"] = round(statistics.median(figures[client]["p50_ms"]), 3)
        figures[client]["compute_p50_ms"] = round(statistics.median(figures[client]["compute_p50_ms"]), 3)
    for kind in ("triton", "edgekit"):
        ratios = [j / b for j, b in zip(figures[f"{kind}-json"]["rounds_p50_ms"],
                                        figures[f"{kind}-binary"]["rounds_p50_ms"])]
        figures[f"{kind}-json"]["json_over_binary"] = round(statistics.median(ratios), 2)
    return figures


def bench_model(url: str, token: str, name: str, path: Path, rounds: int, calls: int) -> dict:
    import httpx

    from edgekit.runtime import open_runner

    runner = open_runner(path, threads=1)
    feeds = feeds_for(path)
    if name.startswith("digits"):
        with np.load(REPO / "samples" / "digits" / "val.npz") as val:
            feeds = {"image": val["image"][:1]}
    host = runner.run(feeds)
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}) as http:
        digest = upload(http, url, path)
    callers = Callers(url, token, digest, feeds, runner.output_names)
    try:
        figures = measure(callers, host, rounds, calls)
    finally:
        callers.close()
    shape = {k: list(v.shape) for k, v in feeds.items()}
    return {"model": name, "file": path.name, "inputs": shape, "outputs": {n: list(o.shape) for n, o in
                                                                         zip(runner.output_names, host)},
            "clients": figures}


def print_model(result: dict) -> None:
    print(f"\n{result['model']} ({result['file']}): inputs {result['inputs']}, outputs {result['outputs']}")
    print(f"  {'client':<16}{'request B':>11}{'reply B':>10}{'p50 ms':>9}{'compute':>9}{'JSON/bin':>10}"
          f"{'max |err|':>11}")
    for client, f in result["clients"].items():
        ratio = f.get("json_over_binary")
        print(f"  {client:<16}{f['request_bytes'] or '':>11}{f['reply_bytes'] or '':>10}{f['p50_ms']:>9.3f}"
              f"{f['compute_p50_ms']:>9.3f}{(f'{ratio:.2f}x' if ratio else ''):>10}{f['max_abs_error']:>11.2g}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from testkit.agent_process import start_agent  # a real agent on a free loopback port

    results = []
    with tempfile.TemporaryDirectory(prefix="edgekit-bench-v2-") as workdir:
        work = Path(workdir)
        models = [(f"{m}/{p}", export_model(m, p, work / "export")) for m in args.models for p in PRECISIONS[m]]
        (work / "agent").mkdir()
        agent = start_agent(work / "agent")
        try:
            for name, path in models:
                results.append(bench_model(agent.url, agent.token, name, path, args.rounds, args.calls))
                print_model(results[-1])
        finally:
            agent.stop()
    exact = all(f["max_abs_error"] <= 1e-5 for r in results for f in r["clients"].values())
    print(f"\n[{'PASS' if exact else 'FAIL'}] every client's outputs equal this host's ONNX Runtime run (|err| ≤ 1e-5); "
          f"p50s are medians over {args.rounds} rounds of {args.calls} calls on a shared host: compare the ratios")
    if args.json:
        args.json.write_text(json.dumps({"rounds": args.rounds, "calls": args.calls, "models": results}, indent=2)
                             + "\n")
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
