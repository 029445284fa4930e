"""Mutation fuzzer for the agent's upload-and-benchmark path: damaged ONNX/TFLite files must never kill it.

Each case takes a valid seed model, applies 1-4 seeded random mutations (bit flips, bytes overwritten with
0x00/0xFF/0x7F/0x80 or random values, truncation, chunk duplication/deletion, random bytes inserted),
uploads the mutant under its sha256, and when the agent accepts it, benchmarks it (3 runs, small timeout),
runs inference once and deletes it. Every status is counted; an agent death (process exited or health
check failing) or a 5xx answer is a finding, and the mutant that caused it is saved to ``--crash-dir``.

The mutators and the campaign live here, shared: ``bench/fuzz_agent.py`` runs long campaigns with an agent of
its own, ``tests/fuzz/test_fuzz_agent.py`` a bounded one in CI.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import random
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

INTERESTING = (0x00, 0xFF, 0x7F, 0x80)
CHUNK_SIZES = (1, 2, 4, 8, 16, 64, 256)
MODEL_FAILURES = ("the model does not load", "runtime_crashed:", "timeout:")  # kserve_v2's 502 details
V2_DATATYPES = {"float32": "FP32", "float16": "FP16", "float64": "FP64", "int64": "INT64", "int32": "INT32",
                "int8": "INT8", "uint8": "UINT8", "bool": "BOOL"}


# ---------------------------------------------------------------- mutators: bytes in, bytes out, seeded rng

def _chunk(data: bytes, rng: random.Random) -> tuple[int, int]:
    """A (start, length) span inside ``data``; lengths are skewed to small, sometimes a quarter of the file."""
    length = min(rng.choice((*CHUNK_SIZES, max(1, len(data) // 4))), len(data))
    return rng.randrange(len(data) - length + 1), length


def bit_flip(data: bytes, rng: random.Random) -> bytes:
    if not data:
        return data
    out = bytearray(data)
    out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    return bytes(out)


def interesting_byte(data: bytes, rng: random.Random) -> bytes:
    """Overwrite 1-4 consecutive bytes with 0x00, 0xFF, 0x7F or 0x80 (lengths, counts and offsets go extreme)."""
    if not data:
        return data
    out, start = bytearray(data), rng.randrange(len(data))
    value = rng.choice(INTERESTING)
    for index in range(start, min(start + rng.choice((1, 2, 4)), len(out))):
        out[index] = value
    return bytes(out)


def random_bytes(data: bytes, rng: random.Random) -> bytes:
    if not data:
        return data
    start, length = _chunk(data, rng)
    return data[:start] + rng.randbytes(length) + data[start + length:]


def truncate(data: bytes, rng: random.Random) -> bytes:
    return data[:rng.randrange(len(data))] if data else data


def duplicate_chunk(data: bytes, rng: random.Random) -> bytes:
    if not data:
        return data
    start, length = _chunk(data, rng)
    at = rng.randrange(len(data) + 1)
    return data[:at] + data[start:start + length] + data[at:]


def delete_chunk(data: bytes, rng: random.Random) -> bytes:
    if not data:
        return data
    start, length = _chunk(data, rng)
    return data[:start] + data[start + length:]


def insert_random(data: bytes, rng: random.Random) -> bytes:
    at = rng.randrange(len(data) + 1)
    return data[:at] + rng.randbytes(rng.choice(CHUNK_SIZES)) + data[at:]


MUTATORS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    f.__name__: f for f in (bit_flip, interesting_byte, random_bytes, truncate, duplicate_chunk, delete_chunk,
                            insert_random)}
# In-place mutations keep the container parseable ~80 % of the time, so those mutants reach the runtimes;
# length-changing ones almost never load, but probe the parsers. Weighted so roughly half the mutants load.
WEIGHTS = {"bit_flip": 4, "interesting_byte": 4, "random_bytes": 3, "truncate": 1, "duplicate_chunk": 1,
           "delete_chunk": 1, "insert_random": 1}


def mutate(data: bytes, rng: random.Random, max_mutations: int = 4) -> tuple[bytes, list[str]]:
    """``data`` with 1..``max_mutations`` stacked mutations (fewer is likelier), and their names in order."""
    stack = min(rng.randint(1, max_mutations), rng.randint(1, max_mutations))
    names = rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()), k=stack)
    for name in names:
        data = MUTATORS[name](data, rng)
    return data, names


# ---------------------------------------------------------------- the campaign against a running agent

@dataclass
class Seed:
    """A valid model to mutate, with inputs for /v1/infer (keyed by the seed's own input names)."""
    name: str
    data: bytes
    inputs: dict[str, np.ndarray]

    @property
    def v2_request(self) -> dict:
        return {"inputs": [{"name": name, "shape": list(array.shape), "datatype": V2_DATATYPES[array.dtype.name],
                            "data": array.ravel().tolist()} for name, array in self.inputs.items()]}

    @property
    def inputs_npz_b64(self) -> str:
        buffer = io.BytesIO()
        np.savez(buffer, **self.inputs)
        return base64.b64encode(buffer.getvalue()).decode()


def load_seed(path: Path) -> Seed:
    """A seed from a model file (an OpenVINO IR's .xml: its upload bundle); inputs are random data in the model's
    own input shapes (batch 1)."""
    from edgekit.runtime import open_runner
    from edgekit.runtime.ir_bundle import upload_chunks

    runner = open_runner(path)
    rng = np.random.default_rng(0)
    inputs = {}
    for name, spec in runner.input_specs().items():
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in spec["shape"]]
        dtype = np.dtype(spec["dtype"])
        inputs[name] = (rng.standard_normal(shape).astype(dtype) if np.issubdtype(dtype, np.floating)
                        else rng.integers(0, 10, shape).astype(dtype))
    return Seed(path.name, b"".join(upload_chunks(path)), inputs)


@dataclass
class Finding:
    """One thing that must not happen: an agent death, a 5xx, or no answer within the client timeout."""
    kind: str  # death | server_error | no_answer
    seed: str
    mutations: list[str]
    digest: str
    step: str
    detail: str
    saved_as: str | None = None


@dataclass
class Campaign:
    cases: int = 0
    upload: Counter = field(default_factory=Counter)
    benchmark: Counter = field(default_factory=Counter)
    infer: Counter = field(default_factory=Counter)
    v2_metadata: Counter = field(default_factory=Counter)
    v2_infer: Counter = field(default_factory=Counter)
    v2_model_failures: int = 0
    delete: Counter = field(default_factory=Counter)
    mutators: Counter = field(default_factory=Counter)
    per_seed: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)  # why uploads were refused / runs failed, paths scrubbed
    deaths: int = 0
    server_errors: int = 0
    no_answer: int = 0
    findings: list[Finding] = field(default_factory=list)
    seconds: float = 0.0

    def _reasons(self) -> dict[str, int]:
        """Every reason a model run was not ok, and the 12 commonest reasons an upload was refused."""
        runs = {k: v for k, v in self.reasons.most_common() if not k.startswith("upload ")}
        uploads = [(k, v) for k, v in self.reasons.most_common() if k.startswith("upload ")][:12]
        return {**runs, **dict(uploads)}

    def as_dict(self) -> dict[str, Any]:
        """Plain figures (status keys as strings) for printing and JSON."""
        plain = lambda c: {str(k): v for k, v in sorted(c.items(), key=lambda kv: str(kv[0]))}  # noqa: E731
        return {"cases": self.cases, "deaths": self.deaths, "server_errors": self.server_errors,
                "no_answer": self.no_answer, "upload": plain(self.upload), "benchmark": plain(self.benchmark),
                "infer": plain(self.infer), "v2_metadata": plain(self.v2_metadata),
                "v2_infer": plain(self.v2_infer), "v2_model_failures": self.v2_model_failures,
                "delete": plain(self.delete), "mutators": plain(self.mutators),
                "per_seed": plain(self.per_seed), "reasons": self._reasons(),
                "seconds": round(self.seconds, 1),
                "findings": [vars(f) for f in self.findings]}


def summary_line(counts: dict[str, Any]) -> str:
    """One line with every figure, e.g. for a test report."""
    fmt = lambda c: " ".join(f"{k}:{v}" for k, v in c.items()) or "-"  # noqa: E731
    return (f"fuzz: {counts['cases']} cases in {counts['seconds']} s, deaths {counts['deaths']}, "
            f"5xx {counts['server_errors']}, no answer {counts['no_answer']} | upload {fmt(counts['upload'])} | "
            f"benchmark {fmt(counts['benchmark'])} | infer {fmt(counts['infer'])} | v2 metadata "
            f"{fmt(counts['v2_metadata'])} | v2 infer {fmt(counts['v2_infer'])} | delete {fmt(counts['delete'])}")


def agent_alive(agent, timeout: float = 5.0) -> bool:
    """The agent process still runs (when we started it) and answers its health check."""
    process = getattr(agent, "process", None)
    if process is not None and process.poll() is not None:
        return False
    try:
        return httpx.get(f"{agent.url}/v1/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def run_mutation_campaign(agent, seeds: list[Seed], count: int, rng: random.Random, *, timeout_s: float = 5.0,
                          max_seconds: float | None = None, min_cases: int = 0, check_timeout_s: float = 60.0,
                          crash_dir: Path | None = None, v2: bool = True,
                          restart: Callable[[], Any] | None = None, progress: Callable[[Campaign], None] | None = None,
                          progress_every: int = 100) -> dict[str, Any]:
    """Upload ``count`` mutants of ``seeds`` to ``agent`` (``.url``, ``.headers``, optional ``.process``);
    benchmark and infer the accepted ones. Returns the figures (see ``Campaign.as_dict``).

    After a death, ``restart()`` must return a fresh agent to go on with; without it the campaign stops.
    ``v2`` adds KServe v2 metadata and inference of each accepted mutant (a session process per model); a 502
    there whose detail says the model failed (does not load, crashed, timed out) is the agent's documented
    answer and is counted as such (``v2_model_failures``), any other 5xx is a finding.
    ``timeout_s`` is the agent-side limit of each model run. ``max_seconds`` stops the campaign early, but never
    before ``min_cases`` ran (the figures say how many did), so a bounded CI run stays bounded on a busy machine
    and still covers the same first, seeded cases.
    """
    campaign, started = Campaign(), time.perf_counter()
    client = httpx.Client(headers=agent.headers, timeout=check_timeout_s + 30)
    try:
        for _ in range(count):
            if (max_seconds is not None and campaign.cases >= min_cases
                    and time.perf_counter() - started > max_seconds):
                break
            seed = rng.choice(seeds)
            mutant, names = mutate(seed.data, rng)
            campaign.cases += 1
            campaign.per_seed[seed.name] += 1
            campaign.mutators.update(names)
            steps = _steps(agent.url, seed, mutant, timeout_s, v2)
            failure = _run_case(client, steps, campaign)
            if failure is None and not agent_alive(agent):
                failure = ("death", "health check after the case", "agent not healthy after the case")
            if failure is not None:
                kind, step, detail = failure
                if kind != "death" and not agent_alive(agent):
                    kind = "death"
                finding = Finding(kind, seed.name, names, hashlib.sha256(mutant).hexdigest(), step, detail)
                finding.saved_as = _save(crash_dir, mutant, finding)
                campaign.findings.append(finding)
                if kind == "death":
                    campaign.deaths += 1
                    if restart is None:
                        break
                    agent = restart()
                    client.close()
                    client = httpx.Client(headers=agent.headers, timeout=check_timeout_s + 30)
                elif kind == "no_answer":
                    campaign.no_answer += 1
            if progress is not None and campaign.cases % progress_every == 0:
                campaign.seconds = time.perf_counter() - started
                progress(campaign)
    finally:
        client.close()
    campaign.seconds = time.perf_counter() - started
    return campaign.as_dict()


def _steps(url: str, seed: Seed, mutant: bytes, timeout_s: float, v2: bool) -> list[tuple[str, str, str, dict]]:
    digest = hashlib.sha256(mutant).hexdigest()
    run = {"digest": digest, "threads": 1, "timeout_s": timeout_s}
    steps = [("upload", "PUT", f"{url}/v1/artifacts/{digest}", {"content": mutant}),
             ("benchmark", "POST", f"{url}/v1/benchmark", {"json": {**run, "warmup": 1, "runs": 3}}),
             ("infer", "POST", f"{url}/v1/infer", {"json": {**run, "inputs_npz_b64": seed.inputs_npz_b64}})]
    if v2:  # the KServe v2 path runs the model in a long-lived session process instead of a one-shot worker
        steps += [("v2_metadata", "GET", f"{url}/v2/models/{digest}", {}),
                  ("v2_infer", "POST", f"{url}/v2/models/{digest}/infer", {"json": seed.v2_request})]
    return steps + [("delete", "DELETE", f"{url}/v1/artifacts/{digest}", {})]


def _run_case(client: httpx.Client, steps, campaign: Campaign) -> tuple[str, str, str] | None:
    """Run the steps of one case, counting statuses; (kind, step, detail) for a finding, else None."""
    for step, method, url, kwargs in steps:
        try:
            response = client.request(method, url, **kwargs)
        except httpx.TimeoutException as exc:
            return "no_answer", step, f"{type(exc).__name__}: no answer in {client.timeout.read} s"
        except httpx.TransportError as exc:
            return "death", step, f"{type(exc).__name__}: {exc}"
        counter: Counter = getattr(campaign, step)
        if response.status_code == 502 and step.startswith("v2_") and _detail(response).startswith(MODEL_FAILURES):
            campaign.v2_model_failures += 1
            counter[502] += 1
            campaign.reasons[f"{step} 502: {_scrub(_detail(response))}"] += 1
            continue
        if response.status_code >= 500:
            campaign.server_errors += 1
            counter[response.status_code] += 1
            return "server_error", step, f"{response.status_code}: {response.text[:500]}"
        if step in ("benchmark", "infer") and response.status_code == 200:
            reply = response.json()
            counter[reply["status"]] += 1
            if reply["status"] != "ok":
                campaign.reasons[f"{step} {reply['status']}: {_scrub(reply['error'] or reply['signal'] or '')}"] += 1
        else:
            counter[response.status_code] += 1
            if response.status_code >= 400 and step != "delete":
                campaign.reasons[f"{step} {response.status_code}: {_scrub(_detail(response))}"] += 1
        if step == "upload" and response.status_code not in (200, 201):
            return None  # refused: nothing to run
    return None


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", ""))
    except ValueError:
        return response.text[:200]


def _scrub(text: str) -> str:
    """An error message without its variable parts (paths, numbers), so alike reasons count together."""
    text = re.sub(r"/\S+", "<path>", str(text))
    return re.sub(r"\d+", "N", text)[:110]


def _save(crash_dir: Path | None, mutant: bytes, finding: Finding) -> str | None:
    if crash_dir is None:
        return None
    crash_dir.mkdir(parents=True, exist_ok=True)
    path = crash_dir / f"{finding.kind}-{finding.digest[:16]}.bin"
    path.write_bytes(mutant)
    path.with_suffix(".json").write_text(json.dumps(vars(finding), indent=2) + "\n")
    return str(path)
