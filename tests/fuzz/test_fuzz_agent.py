"""Fuzzing a real agent: schemathesis against its served OpenAPI document, and mutated ONNX/TFLite uploads.

Both are bounded for CI (about a minute each); ``bench/fuzz_agent.py`` runs long mutation campaigns (the
mutators and the campaign are ``testkit.fuzz_agent``, shared by both).
What must hold: no 5xx, the agent alive after every case, responses as the schema says where it says
anything. Where the served schema is known to be incomplete (``KNOWN_GAPS``) the failure is reported,
not raised; anything else fails with schemathesis' reproducer (a curl command).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import random
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

schemathesis = pytest.importorskip("schemathesis")  # the dev extra

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import seed as hypothesis_seed  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.core.failures import FailureGroup  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from testkit import fuzz_agent, model_ref  # noqa: E402
from testkit.agent_process import start_agent  # noqa: E402

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, negative_data_rejection, positive_data_acceptance, ignored_auth]
# Long runs: EDGEKIT_FUZZ_EXAMPLES=1000 EDGEKIT_FUZZ_SEED=7 pytest -s tests/fuzz/test_fuzz_agent.py -k served_openapi
# (examples per operation, negative cases half as many; a seed replaces CI's fixed, derandomized cases).
POSITIVE_EXAMPLES = int(os.environ.get("EDGEKIT_FUZZ_EXAMPLES", "60"))
NEGATIVE_EXAMPLES, NO_TOKEN_EXAMPLES = max(POSITIVE_EXAMPLES // 2, 1), 5
FUZZ_SEED = os.environ.get("EDGEKIT_FUZZ_SEED")
MUTANTS, MUTATION_SECONDS, MIN_MUTANTS = 200, 75.0, 40  # at most 200 or 75 s, at least the first 40 seeded mutants
# Fuzzed bodies may ask for runs of up to an hour; valid values above these are lowered (invalid ones are
# kept, to be refused with 422), so a case costs at most a few seconds.
BOUNDS = {"timeout_s": 2.0, "min_seconds": 0.05, "runs": 20, "warmup": 3, "threads": 2}
SCHEMA_MAX = {"timeout_s": 3600.0, "min_seconds": 300.0, "runs": 100_000, "warmup": 10_000, "threads": 64}


@dataclass(frozen=True)
class Gap:
    """A failure the agent and its served schema are known to cause today, and why."""
    code: str
    statuses: frozenset[int]
    why: str

    def covers(self, code: str, status: int, body: object) -> bool:
        if code != self.code or status not in self.statuses:
            return False
        # only the agent's own errors ({"detail": "text"}) break the 422 schema, never FastAPI's validation list
        return code != "ST108" or (isinstance(body, dict) and isinstance(body.get("detail"), str))


KNOWN_GAPS = (
    Gap("ST202", frozenset({400, 415, 422}),
        "schema-valid request refused: what the schema cannot say (the body's sha256 is the digest, the body is "
        "a model, inputs_npz_b64 is base64 of an .npz)"),
)


LIVENESS = {"GET /v1/health", "GET /v2/health/live"}  # the only operations without a token


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def alive(agent) -> bool:
    return fuzz_agent.agent_alive(agent)


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    process = start_agent(tmp_path_factory.mktemp("fuzz-agent"), "--memory-limit-mb", "1024")
    yield process
    process.stop()


@pytest.fixture(scope="module")
def seed_paths(tmp_path_factory) -> list[Path]:
    """tiny_cnn as ONNX (FP32, static INT8) and, with the tflite and openvino extras, as TFLite and OpenVINO IR
    (FP32, static INT8; an IR is mutated as its upload bundle)."""
    from edgekit import export

    folder = tmp_path_factory.mktemp("fuzz-seeds")
    formats = {"onnx": "onnx"}
    for fmt, module, suffix in (("tflite", "litert_torch", "tflite"), ("openvino", "nncf", "xml")):
        if importlib.util.find_spec(module) is not None:
            formats[fmt] = suffix
    paths = []
    for fmt, suffix in formats.items():
        export(model_ref("tiny_cnn"), "x86", out=folder / fmt, format=fmt, benchmark=False,
               accuracy={"top1_agreement_min": 0})
        paths += sorted((folder / fmt).glob(f"model.*.{suffix}"))
    return paths


@pytest.fixture(scope="module")
def stored(agent, seed_paths) -> bytes:
    """An ONNX model stored on the agent, so fuzzed digests can point at something real."""
    data = seed_paths[0].read_bytes()
    assert httpx.put(f"{agent.url}/v1/artifacts/{sha(data)}", content=data, headers=agent.headers,
                     timeout=60).status_code in (200, 201)
    return data


@pytest.fixture(scope="module")
def schema(agent):
    loaded = schemathesis.openapi.from_url(f"{agent.url}/v1/openapi.json", headers=agent.headers, timeout=10)
    operations = [result.ok() for result in loaded.get_all_operations()]
    assert {op.label for op in operations} >= {"GET /v1/health", "PUT /v1/artifacts/{digest}", "POST /v1/benchmark",
                                              "POST /v1/infer", "DELETE /v1/artifacts/{digest}"}
    return operations


def bound(case, digest: str) -> None:
    """Lower long runs to ``BOUNDS``; point about half the well-formed digests at the stored model."""
    body = case.body if isinstance(case.body, dict) else {}
    for key, limit in BOUNDS.items():
        value = body.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and limit < value <= SCHEMA_MAX[key]:
            body[key] = type(value)(limit)
    for container in (body, case.path_parameters or {}):
        value = container.get("digest")
        if isinstance(value, str) and len(value) == 64 and value[0] in "02468ace":
            container["digest"] = digest
    raw = getattr(case.body, "data", case.body)  # schemathesis wraps generated binary bodies in Binary
    if isinstance(raw, bytes) and case.path_parameters and str(case.path_parameters.get("digest"))[:1] in "13579":
        case.path_parameters["digest"] = sha(raw)  # an upload the agent parses (once PUT declares its body)


@dataclass
class Findings:
    statuses: Counter
    runs: Counter  # the "status" of 200 answers from /v1/benchmark and /v1/infer (ok, error, runtime_crashed, …)
    known: Counter
    unexpected: list[str]
    cases: int = 0

    def record(self, case, response, error: BaseException | None) -> None:
        self.cases += 1
        self.statuses[(case.operation.label, response.status_code)] += 1
        if case.operation.label in ("POST /v1/benchmark", "POST /v1/infer") and response.status_code == 200:
            self.runs[(case.operation.label, response.json()["status"])] += 1
        if error is None:
            return
        failures = error.exceptions if isinstance(error, FailureGroup) else (error,)
        try:
            body = response.json()
        except ValueError:
            body = None
        for failure in failures:
            code = getattr(failure, "code", type(failure).__name__)
            gap = next((g for g in KNOWN_GAPS if g.covers(code, response.status_code, body)), None)
            if gap is not None:
                self.known[(code, case.operation.label, response.status_code)] += 1
            else:
                curl = case.as_curl_command(headers={"Authorization": "Bearer $TOKEN"})
                self.unexpected.append(f"{code} {case.operation.label} -> {response.status_code}: "
                                       f"{str(failure).splitlines()[0]}\n    {curl}")


def fuzz_operation(operation, mode, examples: int, call) -> None:
    """Run ``call(case)`` on ``examples`` generated cases. No shrinking: schema findings are collected, and a 5xx
    or a dead agent fails at once with the case as generated."""
    @settings(max_examples=examples, deadline=None, database=None, derandomize=FUZZ_SEED is None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case):
        call(case)

    if FUZZ_SEED is not None:
        run = hypothesis_seed(int(FUZZ_SEED))(run)

    try:
        run()
    except Unsatisfiable:  # an operation without parameters has no negative cases
        pass


def test_schemathesis_against_the_served_openapi_document(agent, stored, schema):
    findings, digest = Findings(Counter(), Counter(), Counter(), []), sha(stored)
    started = time.monotonic()

    def call(case):
        bound(case, digest)
        response = case.call(base_url=agent.url, headers=agent.headers, timeout=60)
        error = None
        try:
            case.validate_response(response, checks=CHECKS, headers=agent.headers,
                                   transport_kwargs={"base_url": agent.url, "headers": agent.headers, "timeout": 60})
        except (AssertionError, FailureGroup) as exc:
            error = exc
        findings.record(case, response, error)
        if case.operation.method.upper() == "DELETE" and response.status_code == 204:  # put the stored model back
            httpx.put(f"{agent.url}/v1/artifacts/{digest}", content=stored, headers=agent.headers, timeout=60)
        assert response.status_code < 500, f"{case.operation.label} -> {response.status_code}: {response.text[:500]}"
        assert alive(agent), f"agent died after {case.as_curl_command()}"

    for operation in schema:
        fuzz_operation(operation, schemathesis.GenerationMode.POSITIVE, POSITIVE_EXAMPLES, call)
        fuzz_operation(operation, schemathesis.GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES, call)

    seconds = time.monotonic() - started
    print(f"\nschemathesis: {findings.cases} cases in {seconds:.0f} s over {len(schema)} operations; statuses "
          + ", ".join(f"{label} {status}: {n}" for (label, status), n in sorted(findings.statuses.items())))
    print("  model runs: " + ", ".join(f"{label} {status}: {n}" for (label, status), n in
                                     sorted(findings.runs.items())))
    for (code, label, status), n in sorted(findings.known.items()):
        print(f"  known schema gap {code} {label} -> {status}: {n}x")
    assert alive(agent)
    assert not any(status >= 500 for _, status in findings.statuses)
    assert findings.cases >= 5 * len(schema)
    ran = {label for label, _ in findings.statuses}
    assert ran == {op.label for op in schema}, "every operation was exercised"
    assert not findings.unexpected, "schemathesis found:\n" + "\n".join(findings.unexpected[:20])


@pytest.mark.parametrize("authorization", [None, "Bearer not-the-token"])
def test_schemathesis_cases_without_the_token_get_401(agent, schema, authorization):
    statuses: Counter = Counter()

    def call(case):
        case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
        headers = {"Authorization": authorization} if authorization else None
        response = case.call(base_url=agent.url, headers=headers, timeout=30)
        statuses[(case.operation.label, response.status_code)] += 1
        expected = 200 if case.operation.label in LIVENESS else 401
        assert response.status_code == expected, f"{case.operation.label} -> {response.status_code}"
        if expected == 401:
            assert response.headers.get("www-authenticate") == ["Bearer"]  # schemathesis: lower-case, lists

    for operation in schema:
        fuzz_operation(operation, schemathesis.GenerationMode.POSITIVE, NO_TOKEN_EXAMPLES, call)
    print(f"\nwithout a valid token: {sum(statuses.values())} cases, "
          + ", ".join(f"{label} {status}: {n}" for (label, status), n in sorted(statuses.items())))
    assert {label for label, _ in statuses} == {op.label for op in schema}
    assert alive(agent)


def test_mutated_models_never_kill_the_agent(agent, seed_paths, request):
    seeds = [fuzz_agent.load_seed(p) for p in seed_paths]
    crash_dir = Path(request.config.rootpath) / ".pytest_cache" / "fuzz-findings"
    counts = fuzz_agent.run_mutation_campaign(agent, seeds, MUTANTS, random.Random(20240611), timeout_s=5.0,
                                              max_seconds=MUTATION_SECONDS, min_cases=MIN_MUTANTS,
                                              crash_dir=crash_dir)
    line = fuzz_agent.summary_line(counts)
    print(f"\n{line}\nseeds: {', '.join(s.name for s in seeds)}; mutators: {counts['mutators']}")
    request.node.user_properties.append(("fuzz_summary", line))
    for finding in counts["findings"]:
        print(f"FINDING {finding}")
    assert counts["deaths"] == 0 and alive(agent), counts["findings"]
    assert counts["server_errors"] == 0 and counts["no_answer"] == 0, counts["findings"]
    accepted = counts["upload"].get("201", 0) + counts["upload"].get("200", 0)
    refused = sum(v for k, v in counts["upload"].items() if k in ("400", "415"))
    assert accepted >= 5 and refused >= 5, "the mutants reach both the parsers' refusals and the runtimes"
    assert sum(counts["benchmark"].values()) == sum(counts["infer"].values()) == accepted
    assert set(counts["upload"]) <= {"200", "201", "400", "413", "415"}
    assert set(counts["benchmark"]) | set(counts["infer"]) <= {"ok", "error", "runtime_crashed", "timeout"}
    assert sum(counts["v2_metadata"].values()) == accepted
    assert set(counts["v2_metadata"]) | set(counts["v2_infer"]) <= {"200", "400", "502"}


@pytest.mark.parametrize("tensor", [{"shape": [2**70], "datatype": "FP32", "data": [0.0]},
                                    {"shape": [1, 3, 8, 8], "datatype": "INT64", "data": [2**70] * 192}],
                         ids=["shape beyond int64", "INT64 data beyond int64"])
def test_v2_infer_refuses_integers_beyond_int64_with_400(agent, stored, tensor):
    """Schema-valid (shape: list of integers, data: list of anything), so fuzzers reach it."""
    body = {"inputs": [{"name": "x", **tensor}]}
    response = httpx.post(f"{agent.url}/v2/models/{sha(stored)}/infer", json=body, headers=agent.headers, timeout=60)
    assert alive(agent)
    assert response.status_code == 400, response.text
