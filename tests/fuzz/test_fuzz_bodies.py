"""Fuzzed request bodies against a real agent (testkit/fuzz_bodies.py): random bytes, other text encodings, deep
JSON nesting, numbers out of range, wrong types, shapes and datatypes, broken binary-tensor framing, other
Content-Types and Content-Encodings, on every JSON endpoint.

Bounded by count and by time for CI; what must hold is what it finds: no 5xx, no death, no answer echoing the body,
and the agent still serving afterwards. ``bench/fuzz_bodies.py --cases 5000`` runs the long campaign.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from testkit.agent_process import start_agent

pytest.importorskip("onnx")  # the seed model is built with onnx.helper (the export extra)
from testkit import fuzz_bodies  # noqa: E402

BODIES = int(os.environ.get("EDGEKIT_FUZZ_BODIES", "600"))
SECONDS = float(os.environ.get("EDGEKIT_FUZZ_BODY_SECONDS", "60"))


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    process = start_agent(tmp_path_factory.mktemp("fuzz-bodies"), "--memory-limit-mb", "1024")
    yield process
    process.stop()


def test_fuzzed_bodies_never_get_a_5xx_or_kill_the_agent(agent, request):
    digest = fuzz_bodies.upload_seed(agent)
    assert fuzz_bodies.still_serves(agent, digest)
    crash_dir = Path(request.config.rootpath) / ".pytest_cache" / "fuzz-findings"
    counts = fuzz_bodies.run_body_campaign(agent, digest, BODIES, random.Random(20260611), max_seconds=SECONDS,
                                           crash_dir=crash_dir)
    line = fuzz_bodies.summary_line(counts)
    print(f"\n{line}")
    request.node.user_properties.append(("fuzz_bodies_summary", line))
    for finding in counts["findings"]:
        print(f"FINDING {finding}")
    assert counts["findings"] == [], line
    assert fuzz_bodies.agent_alive(agent) and fuzz_bodies.still_serves(agent, digest)
    refused = {key.split()[-1] for key in counts["statuses"]} - {"200", "unsent"}
    assert refused <= {"400", "404", "413", "415", "422"}, counts["statuses"]
