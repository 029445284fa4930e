"""Request-body fuzzer for the agent's JSON endpoints: no body may get a 5xx, kill the agent or come back echoed.

Each case sends one generated body to one JSON endpoint (``POST /v1/benchmark``, ``/v1/infer``,
``/v2/models/{digest}/infer`` and its ``/versions/1`` alias) of a real agent serving a small two-input ONNX model
(FP32 image with a dynamic batch, INT64 ids; FP32 and INT64 outputs). Generators, all seeded:
random bytes; byte mutations of a valid body (``fuzz_agent.mutate``); other text encodings (UTF-16/32, BOM,
Latin-1, Shift-JIS, …); deep JSON nesting (to 100,000 levels); numbers out of range (1e309, 2**64, 5,000 digits,
NaN, -0, …); wrong JSON types; missing, unknown and duplicate keys; wrong shapes, datatypes and tensor data; the
binary tensor extension's framing (header length, ``binary_data_size``); other Content-Types and
Content-Encodings (gzip, deflate, a decompression bomb). A finding is an agent death, a 5xx, no answer within
the client timeout, or an error answer that is not a short ASCII ``{"detail": "..."}`` (the body echoed back).

    .venv/bin/python bench/fuzz_bodies.py --cases 5000 --seed 1 [--json out.json]

The generators and the campaign are ``testkit.fuzz_bodies``, shared with ``tests/fuzz/test_fuzz_bodies.py``,
which runs a campaign bounded by count and time in CI.
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
from testkit.fuzz_bodies import (  # noqa: E402
    ENDPOINTS,
    BodyCampaign,
    run_body_campaign,
    still_serves,
    summary_line,
    upload_seed,
)

# ---------------------------------------------------------------- CLI

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=5000, help="bodies to send (default: 5000)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    parser.add_argument("--crash-dir", type=Path, default=Path("fuzz-findings"),
                        help="where bodies that were findings are saved (default: fuzz-findings)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON to this path")
    args = parser.parse_args(argv)
    if args.cases < 1:
        parser.error("--cases must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from testkit.agent_process import start_agent  # a real agent on a free loopback port

    with tempfile.TemporaryDirectory(prefix="edgekit-fuzz-bodies-") as workdir:
        agents = []

        def restart():
            if agents:
                agents[-1].stop()
            folder = Path(workdir) / f"agent-{len(agents)}"
            folder.mkdir()
            agents.append(start_agent(folder, "--memory-limit-mb", "1024"))
            upload_seed(agents[-1])
            return agents[-1]

        def progress(c: BodyCampaign) -> None:
            print(f"  {c.cases} bodies, {c.seconds:.0f} s: deaths {c.count('death')}, 5xx {c.count('server_error')}, "
                  f"no answer {c.count('no_answer')}, echoed {c.count('echoed_error')}", flush=True)

        agent = restart()
        digest = upload_seed(agent)
        print(f"fuzz_bodies: {args.cases} bodies, seed {args.seed}, endpoints {', '.join(ENDPOINTS)}", flush=True)
        try:
            counts = run_body_campaign(agent, digest, args.cases, random.Random(args.seed), crash_dir=args.crash_dir,
                                       restart=restart, progress=progress, progress_every=max(args.cases // 10, 1))
            counts["still_serves"] = still_serves(agents[-1], digest)
        finally:
            agents[-1].stop()
    print_report(counts)
    if args.json:
        args.json.write_text(json.dumps({"seed": args.seed, **counts}, indent=2) + "\n")
    return 0 if passed(counts) else 1


def passed(counts: dict[str, Any]) -> bool:
    return not counts["findings"] and counts.get("still_serves", True)


def print_report(counts: dict[str, Any]) -> None:
    print(f"\n{'figure':<16}value")
    for key in ("cases", "deaths", "server_errors", "no_answer", "echoed_errors", "still_serves", "seconds"):
        print(f"{key:<16}{counts.get(key)}")
    print("statuses per endpoint:")
    for key, n in counts["statuses"].items():
        print(f"  {n:>6}  {key}")
    print("statuses per generator:")
    for key, n in counts["generators"].items():
        print(f"  {n:>6}  {key}")
    for finding in counts["findings"]:
        print(f"FINDING {finding['kind']} at {finding['endpoint']} ({finding['generator']}): {finding['detail']} -> "
              f"{finding['saved_as']}")
    print(f"[{'PASS' if passed(counts) else 'FAIL'}] 0 deaths, 0 5xx, 0 echoed errors: {summary_line(counts)}")


if __name__ == "__main__":
    sys.exit(main())
