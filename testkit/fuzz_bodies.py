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

The generators and the campaign live here, shared: ``bench/fuzz_bodies.py`` runs long campaigns with an agent
of its own, ``tests/fuzz/test_fuzz_bodies.py`` one bounded by count and time in CI.
"""

from __future__ import annotations

import base64
import copy
import functools
import gzip
import hashlib
import io
import json
import random
import time
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from testkit.fuzz_agent import agent_alive, mutate  # the model-file fuzzer's

ENDPOINTS = ("v1/benchmark", "v1/infer", "v2/infer", "v2/versions/1/infer")
TEMPLATE_OF = {"v2/versions/1/infer": "v2/infer"}
MAX_ERROR_BYTES = 1024
HEALTH_EVERY = 25
ENCODINGS = ("utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-8-sig", "latin-1", "cp1252", "shift_jis",
             "gb18030", "utf-7")
NASTY_NUMBERS = ("1e309", "-1e309", "1e-400", "NaN", "Infinity", "-Infinity", "-0", "-0.0", "0.5", "1e20",
                 "65504.5", "3.5e38", "256", "-129", "4294967296", "9223372036854775808", "-9223372036854775809",
                 "18446744073709551616", "1" + "0" * 5000, "1e99999")
OTHER_VALUES = (None, True, False, "", "x", "\u0000", "\ud800", "é日本", [], {}, [[]], {"a": 1}, 0, 1.5, -1,
                "a" * 100_000)
DATATYPES = ("FP32", "FP16", "FP64", "INT64", "INT32", "INT8", "UINT8", "UINT64", "BOOL", "BYTES", "BF16", "FP8",
             "fp32", "", None, 7)
CONTENT_TYPES = (None, "application/json", "text/plain", "application/octet-stream", "multipart/form-data; boundary=x",
                 "application/x-www-form-urlencoded", "application/json; charset=utf-16", "application/vnd.x+json")
HEADER_LENGTHS = ("-1", "0", "abc", "1e3", "12 12", b"\xb2", "99999999999999999999", "0x10")  # '²' isdigit()


# ---------------------------------------------------------------- the model and valid bodies for it

def seed_model() -> bytes:
    """An ONNX model with two inputs and two outputs: x FP32[N,3,8,8] → y FP32[N,4]; ids INT64[N,4] → z = 2·ids."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["p"]), helper.make_node("Flatten", ["p"], ["y"]),
             helper.make_node("Add", ["ids", "ids"], ["z"])]
    graph = helper.make_graph(nodes, "fuzz", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8]),
                                              helper.make_tensor_value_info("ids", TensorProto.INT64, ["N", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4]),
                               helper.make_tensor_value_info("z", TensorProto.INT64, ["N", 4])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model.SerializeToString()


def seed_inputs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {"x": rng.standard_normal((1, 3, 8, 8)).astype(np.float32), "ids": rng.integers(-5, 5, (1, 4))}


def _npz_b64(arrays: dict[str, np.ndarray], **kwargs: Any) -> str:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays, **kwargs)
    return base64.b64encode(buffer.getvalue()).decode()


def templates(digest: str) -> dict[str, dict]:
    """A valid body per endpoint kind (short runs: each v1 request starts a worker process)."""
    inputs = seed_inputs()
    tensors = [{"name": n, "shape": list(a.shape), "datatype": "FP32" if a.dtype == np.float32 else "INT64",
                "data": a.ravel().tolist()} for n, a in inputs.items()]
    return {"v1/benchmark": {"digest": digest, "threads": 1, "warmup": 0, "runs": 1, "timeout_s": 5.0,
                             "inputs": {"x": {"shape": [1, 3, 8, 8], "dtype": "float32"},
                                        "ids": {"shape": [1, 4], "dtype": "int64"}}},
            "v1/infer": {"digest": digest, "timeout_s": 5.0, "inputs_npz_b64": _npz_b64(inputs)},
            "v2/infer": {"id": "fuzz", "inputs": tensors,
                         "outputs": [{"name": "y"}, {"name": "z", "parameters": {"binary_data": True}}],
                         "parameters": {"binary_data_output": False}}}


@dataclass
class Body:
    content: bytes
    headers: dict[str, str | bytes] = field(default_factory=dict)


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def binary_body(request: dict) -> Body:
    """``request`` with its tensors' data moved behind the JSON header (the binary tensor extension)."""
    request, chunks = copy.deepcopy(request), []
    for tensor in request["inputs"]:
        dtype = np.float32 if tensor["datatype"] == "FP32" else np.int64
        raw = np.asarray(tensor.pop("data"), dtype=dtype).astype(np.dtype(dtype).newbyteorder("<")).tobytes()
        tensor["parameters"] = {"binary_data_size": len(raw)}
        chunks.append(raw)
    header = _json(request)
    return Body(header + b"".join(chunks), {"Inference-Header-Content-Length": str(len(header))})


# ---------------------------------------------------------------- JSON-tree helpers

def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a node of a JSON tree (dict keys and list indexes), the root included."""
    paths = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            paths += _paths(item, (*prefix, key))
    elif isinstance(value, list) and len(value) <= 16:  # long data lists: their first items stand for the rest
        for index, item in enumerate(value):
            paths += _paths(item, (*prefix, index))
    elif isinstance(value, list):
        for index in (0, len(value) - 1):
            paths += _paths(value[index], (*prefix, index))
    return paths


def _replace(tree: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    tree = copy.deepcopy(tree)
    node = tree
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return tree


def _with_raw(tree: Any, path: tuple, raw: str) -> bytes:
    """``tree`` as JSON with the node at ``path`` written as the raw text ``raw`` (numbers JSON cannot carry)."""
    marker = "@@RAW@@"
    return json.dumps(_replace(tree, path, marker)).replace(f'"{marker}"', raw).encode()


def _nested(depth: int, as_object: bool) -> str:
    return ('{"a":' * depth + "1" + "}" * depth) if as_object else ("[" * depth + "1" + "]" * depth)


# ---------------------------------------------------------------- generators: (rng, endpoint, template) -> Body

def random_bytes(rng: random.Random, endpoint: str, template: dict) -> Body:
    prefix = rng.choice((b"", b"{", b"[", b'{"inputs": '))
    return Body(prefix + rng.randbytes(rng.choice((1, 3, 16, 256, 4096))))


def byte_mutation(rng: random.Random, endpoint: str, template: dict) -> Body:
    base = binary_body(template) if endpoint.startswith("v2") and rng.random() < 0.3 else Body(_json(template))
    return Body(mutate(base.content, rng)[0], base.headers)


def text_encoding(rng: random.Random, endpoint: str, template: dict) -> Body:
    request = dict(template)
    request[rng.choice(("id", "digest", "note"))] = rng.choice(("é日本", "Ωmega", "naïve", "\u00ff" * 8))
    text = json.dumps(request, ensure_ascii=False)
    return Body(text.encode(rng.choice(ENCODINGS), errors="ignore"))


def deep_nesting(rng: random.Random, endpoint: str, template: dict) -> Body:
    nested = _nested(rng.choice((64, 65, 500, 999, 1000, 5000, 100_000)), rng.random() < 0.5)
    return Body(_with_raw(template, rng.choice(_paths(template)), nested))


def out_of_range(rng: random.Random, endpoint: str, template: dict) -> Body:
    numeric = [p for p in _paths(template) if isinstance(_get(template, p), (int, float))]
    return Body(_with_raw(template, rng.choice(numeric or [()]), rng.choice(NASTY_NUMBERS)))


def wrong_type(rng: random.Random, endpoint: str, template: dict) -> Body:
    return Body(_json(_replace(template, rng.choice(_paths(template)), rng.choice(OTHER_VALUES))))


def structure(rng: random.Random, endpoint: str, template: dict) -> Body:
    text = _json(template)
    choice = rng.randrange(6)
    if choice == 0:  # a key missing
        path = rng.choice([p for p in _paths(template) if p and isinstance(p[-1], str)])
        parent = copy.deepcopy(template)
        node = parent
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
        return Body(_json(parent))
    if choice == 1:  # an unknown key
        return Body(_json({**template, rng.choice(("extra", "inputs_", "__proto__")): rng.choice(OTHER_VALUES)}))
    if choice == 2:  # a duplicate key: the last one wins in Python's parser
        return Body(text[:-1] + b', "digest": 5, "inputs": null}')
    if choice == 3:
        return Body(_json(rng.choice(([template], "text", 5, None, True, {}, []))))
    if choice == 4:
        return Body(text[:rng.randrange(len(text))])
    return Body(text + rng.choice((b"garbage", b"}", b"\x00", b" " * 10_000)))


def tensors(rng: random.Random, endpoint: str, template: dict) -> Body:
    """Wrong shapes, datatypes and data: v2 tensors, v1 input shapes, v1 .npz arrays."""
    request = copy.deepcopy(template)
    shape = rng.choice(([], [0], [0, 3, 8, 8], [-1, 3, 8, 8], [1, 3, 8], [2, 3, 8, 8], [1] * 20, [2**40, 3, 8, 8],
                        [2**63], [1, 3, 800, 800], [3, 1, 8, 8], [1, 4], [4]))
    if endpoint == "v1/benchmark":
        spec = request["inputs"][rng.choice(("x", "ids"))]
        spec["shape"] = shape if rng.random() < 0.6 else spec["shape"]
        spec["dtype"] = rng.choice(("float32", "float16", "int64", "int8", "bool", "float64", "complex64"))
        return Body(_json(request))
    if endpoint == "v1/infer":
        arrays = seed_inputs()
        name = rng.choice(("x", "ids", "other"))
        small = len(shape) <= 8 and all(0 <= d <= 64 for d in shape)
        arrays[name] = rng.choice((np.zeros(shape if small else [2], np.float32),
                                   np.zeros((1, 3, 8, 8), np.float64), np.zeros((1, 4), np.float32),
                                   np.array([], np.float32), np.array("text"), np.zeros((1, 4), np.complex64)))
        request["inputs_npz_b64"] = rng.choice((_npz_b64(arrays), _npz_b64({}), base64.b64encode(b"PK\x03\x04xx")
                                                .decode(), "!!!", _npz_b64(arrays, o=np.array([{}], dtype=object))
                                                if rng.random() < 0.2 else _npz_b64(arrays)))
        return Body(_json(request))
    tensor = rng.choice(request["inputs"])
    field_ = rng.choice(("shape", "datatype", "data", "name", "all"))
    if field_ in ("shape", "all"):
        tensor["shape"] = shape
    if field_ in ("datatype", "all"):
        tensor["datatype"] = rng.choice(DATATYPES)
    if field_ in ("data", "all"):
        count = len(tensor["data"])
        tensor["data"] = rng.choice(([0.5] * (count - 1), [[0.5] * count], [[1, 2], [3]], ["1"] * count,
                                     [None] * count, [True] * count, [{}] * count, [2**70] * count,
                                     [1e300] * count, list(range(count)), []))
    if field_ == "name":
        tensor["name"] = rng.choice(("", "y", "x" * 300, "ids", "\u0000"))
    return binary_body(request) if rng.random() < 0.3 and _binary_ok(request) else Body(_json(request))


def _binary_ok(request: dict) -> bool:
    try:
        binary_body(request)
        return True
    except (TypeError, ValueError, OverflowError):
        return False


def binary_framing(rng: random.Random, endpoint: str, template: dict) -> Body:
    body = binary_body(template)
    header_length = int(body.headers["Inference-Header-Content-Length"])
    choice = rng.randrange(4)
    if choice == 0:
        body.headers["Inference-Header-Content-Length"] = rng.choice(
            (*HEADER_LENGTHS, str(header_length - 1), str(header_length + 1), str(len(body.content) + 1)))
    elif choice == 1:
        header = json.loads(body.content[:header_length])
        header["inputs"][rng.randrange(2)]["parameters"]["binary_data_size"] = rng.choice(
            (-1, 0, 1, 1.5, "16", None, True, 2**64, 10**6))
        raw = _json(header)
        body = Body(raw + body.content[header_length:], {"Inference-Header-Content-Length": str(len(raw))})
    elif choice == 2:
        body.content += rng.randbytes(rng.choice((1, 7, 4096)))
    else:
        body.content = body.content[:header_length + rng.randrange(len(body.content) - header_length)]
    return body


def content_headers(rng: random.Random, endpoint: str, template: dict) -> Body:
    body = Body(_json(template)) if rng.random() < 0.7 else byte_mutation(rng, endpoint, template)
    content_type = rng.choice(CONTENT_TYPES)
    if content_type:
        body.headers["Content-Type"] = content_type
    encoding = rng.choice((None, "gzip", "deflate", "gzip-garbage", "br", "bomb", "identity"))
    if encoding == "gzip":
        body.content, body.headers["Content-Encoding"] = gzip.compress(body.content), "gzip"
    elif encoding == "deflate":
        body.content, body.headers["Content-Encoding"] = zlib.compress(body.content), "deflate"
    elif encoding == "gzip-garbage":
        body.headers["Content-Encoding"] = "gzip"
    elif encoding == "bomb":
        body.content, body.headers["Content-Encoding"] = _bomb(), "gzip"
    elif encoding:
        body.headers["Content-Encoding"] = encoding
    return body


@functools.cache
def _bomb() -> bytes:
    """80 MiB of zeros in ~80 kB of gzip: over the agent's 64 MiB limit once inflated."""
    return gzip.compress(b"0" * (80 * 1024 * 1024), 9)


def _get(tree: Any, path: tuple) -> Any:
    for key in path:
        tree = tree[key]
    return tree


GENERATORS: dict[str, Callable[[random.Random, str, dict], Body]] = {
    g.__name__: g for g in (random_bytes, byte_mutation, text_encoding, deep_nesting, out_of_range, wrong_type,
                            structure, tensors, binary_framing, content_headers)}
V2_ONLY = {"binary_framing"}


# ---------------------------------------------------------------- the campaign

@dataclass
class BodyFinding:
    kind: str  # death | server_error | no_answer | echoed_error
    endpoint: str
    generator: str
    detail: str
    saved_as: str | None = None


@dataclass
class BodyCampaign:
    cases: int = 0
    statuses: Counter = field(default_factory=Counter)  # "endpoint status"
    generators: Counter = field(default_factory=Counter)  # "generator status"
    findings: list[BodyFinding] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, kind: str) -> int:
        return sum(f.kind == kind for f in self.findings)

    def as_dict(self) -> dict[str, Any]:
        plain = lambda c: dict(sorted(c.items()))  # noqa: E731
        return {"cases": self.cases, "deaths": self.count("death"), "server_errors": self.count("server_error"),
                "no_answer": self.count("no_answer"), "echoed_errors": self.count("echoed_error"),
                "statuses": plain(self.statuses), "generators": plain(self.generators),
                "seconds": round(self.seconds, 1), "findings": [vars(f) for f in self.findings]}


def summary_line(counts: dict[str, Any]) -> str:
    return (f"body fuzz: {counts['cases']} bodies in {counts['seconds']} s, deaths {counts['deaths']}, "
            f"5xx {counts['server_errors']}, no answer {counts['no_answer']}, echoed errors {counts['echoed_errors']}"
            " | " + " ".join(f"{k}:{v}" for k, v in counts["statuses"].items()))


def _url(agent, endpoint: str, digest: str) -> str:
    paths = {"v1/benchmark": "/v1/benchmark", "v1/infer": "/v1/infer", "v2/infer": f"/v2/models/{digest}/infer",
             "v2/versions/1/infer": f"/v2/models/{digest}/versions/1/infer"}
    return agent.url + paths[endpoint]


def _judge(response: httpx.Response, endpoint: str) -> str | None:
    """Why an answer is a finding, or None."""
    if response.status_code >= 500:
        return f"HTTP {response.status_code}: {response.text[:300]!r}"
    if response.status_code < 400:
        return None
    body = response.content
    try:
        reply = json.loads(body) if body.isascii() and len(body) <= MAX_ERROR_BYTES else None
    except ValueError:
        reply = None
    if not isinstance(reply, dict) or not isinstance(reply.get("detail"), str) or (
            endpoint.startswith("v2") and reply.get("error") != reply["detail"]):
        return f"HTTP {response.status_code} error answer is not a short ASCII detail: {body[:300]!r}"
    return None


def run_body_campaign(agent, digest: str, count: int, rng: random.Random, *, max_seconds: float | None = None,
                      timeout_s: float = 60.0, crash_dir: Path | None = None,
                      restart: Callable[[], Any] | None = None,
                      progress: Callable[[BodyCampaign], None] | None = None, progress_every: int = 500) -> dict:
    """Send ``count`` generated bodies (or as many as fit in ``max_seconds``) to ``agent`` (``.url``,
    ``.headers``, optional ``.process``) whose store holds the seed model under ``digest``.

    After a death, ``restart()`` must return a fresh agent holding the seed model; without it the campaign stops."""
    campaign, started = BodyCampaign(), time.perf_counter()
    bodies = templates(digest)
    client = httpx.Client(timeout=timeout_s)
    try:
        while campaign.cases < count and (max_seconds is None or time.perf_counter() - started < max_seconds):
            endpoint = rng.choice(ENDPOINTS)
            names = [g for g in GENERATORS if endpoint.startswith("v2") or g not in V2_ONLY]
            generator = rng.choice(names)
            body = GENERATORS[generator](rng, endpoint, bodies[TEMPLATE_OF.get(endpoint, endpoint)])
            campaign.cases += 1
            finding = None
            try:
                response = client.post(_url(agent, endpoint, digest), content=body.content,
                                       headers={**agent.headers, **body.headers})
                campaign.statuses[f"{endpoint} {response.status_code}"] += 1
                campaign.generators[f"{generator} {response.status_code}"] += 1
                reason = _judge(response, endpoint)
                if reason is not None:
                    finding = BodyFinding("server_error" if response.status_code >= 500 else "echoed_error",
                                          endpoint, generator, reason)
            except (httpx.LocalProtocolError, UnicodeEncodeError):  # a header this client will not send
                campaign.statuses[f"{endpoint} unsent"] += 1
                continue
            except httpx.TimeoutException:
                finding = BodyFinding("no_answer", endpoint, generator, f"no answer in {timeout_s} s")
            except httpx.TransportError as exc:
                finding = BodyFinding("death", endpoint, generator, f"{type(exc).__name__}: {exc}")
            check = finding is not None or campaign.cases % HEALTH_EVERY == 0
            if not _process_alive(agent) or (check and not agent_alive(agent)):
                finding = BodyFinding("death", endpoint, generator,
                                      finding.detail if finding else "agent gone after the case")
            if finding is not None:
                finding.saved_as = _save(crash_dir, body, finding, campaign.cases)
                campaign.findings.append(finding)
                if finding.kind == "death":
                    if restart is None:
                        break
                    agent = restart()
            if progress is not None and campaign.cases % progress_every == 0:
                campaign.seconds = time.perf_counter() - started
                progress(campaign)
    finally:
        client.close()
    campaign.seconds = time.perf_counter() - started
    return campaign.as_dict()


def _process_alive(agent) -> bool:
    process = getattr(agent, "process", None)
    return process is None or process.poll() is None


def _save(crash_dir: Path | None, body: Body, finding: BodyFinding, case: int) -> str | None:
    if crash_dir is None:
        return None
    crash_dir.mkdir(parents=True, exist_ok=True)
    path = crash_dir / f"body-{finding.kind}-{case}.bin"
    path.write_bytes(body.content)
    path.with_suffix(".json").write_text(json.dumps({**vars(finding), "headers": {k: repr(v) for k, v in body.headers.items()}},
                                                     indent=2) + "\n")
    return str(path)


def upload_seed(agent) -> str:
    """Store the seed model on ``agent``; its digest."""
    data = seed_model()
    digest = hashlib.sha256(data).hexdigest()
    response = httpx.put(f"{agent.url}/v1/artifacts/{digest}", content=data, headers=agent.headers, timeout=60)
    response.raise_for_status()
    return digest


def still_serves(agent, digest: str) -> bool:
    """A valid v2 inference and a valid v1 inference still answer correctly (z = 2 · ids)."""
    inputs = seed_inputs()
    request = {**templates(digest)["v2/infer"], "outputs": [{"name": "z"}]}  # as JSON
    v2 = httpx.post(f"{agent.url}/v2/models/{digest}/infer", json=request, headers=agent.headers, timeout=60)
    if v2.status_code != 200:
        return False
    z = next(o for o in v2.json()["outputs"] if o["name"] == "z")
    v1 = httpx.post(f"{agent.url}/v1/infer", json=templates(digest)["v1/infer"], headers=agent.headers, timeout=60)
    return z["data"] == (2 * inputs["ids"]).ravel().tolist() and v1.status_code == 200 and v1.json()["status"] == "ok"
