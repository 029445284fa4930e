"""``--cloud URL``: any Open Inference Protocol (KServe v2 REST) server as the cloud baseline.

``GET {url}/v2/models/{name}``: the model's metadata, whose inputs must be the artifact's (names, datatypes,
shapes; -1 or a symbolic dimension matches any size). ``POST {url}/v2/models/{name}/infer``: timed end to end
from this host (request sent → output arrays decoded), after a warm-up. Tensors go with the binary tensor extension
where the server lists ``binary_tensor_data`` in ``GET /v2`` and answers such a request, else as JSON (a note says
why); the report's ``encoding`` says which was measured, ``payload_bytes`` how large request and reply were.
The network round trip alone is timed on ``GET {url}/v2/health/ready``. The server's own compute time is taken where it reports one: the edgekit
agent's ``parameters.edgekit_compute_ms`` per reply, or Triton's ``/v2/models/{name}/stats`` (a mean); else it is
null and the report says so. The server's outputs on validation samples are checked against this host's FP32 run.

An edgekit agent is a KServe v2 server too (model name = the file's sha256): with the default model name, a model
it does not have yet is uploaded to it first.
"""

from __future__ import annotations

import itertools
import time

import numpy as np

from .base import CloudError, CloudModelMismatch, Reference, accuracy_dict, latency_dict
from .v2_client import BINARY_EXTENSION, V2Client, decode_outputs, describe_inputs, encode_request, input_mismatches


class KServeCloud:
    """A model on a KServe v2 server, reached from this host."""

    kind = "kserve"

    def __init__(self, url: str, reference: Reference, *, model_name: str | None = None, token: str | None = None,
                 timeout: float = 30.0):
        self.client = V2Client(url, token, timeout)
        self.url = self.client.url
        self.reference = reference
        self.model_name = model_name or reference.sha256
        self.token = token
        self.notes: list[str] = []
        self.metadata: dict = {}
        self.server: dict = {}
        self.encoding = "json"  # or "binary", chosen by ``choose_encoding``
        self._agent_info: dict | None = None

    def __enter__(self) -> "KServeCloud":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.client.close()

    @property
    def model_path(self) -> str:
        return f"/v2/models/{self.model_name}"

    # -- before anything is measured ---------------------------------------------------------------------

    def prepare(self) -> None:
        """Reach the server, find the model (uploading it to an edgekit agent), check its inputs."""
        metadata = self.client.model_metadata(self.model_path)
        agent = self._is_edgekit_agent()
        if metadata is None and self.model_name == self.reference.sha256 and agent:
            self._upload_to_agent()
            metadata = self.client.model_metadata(self.model_path)
        if metadata is None:
            raise CloudError(f"the cloud server {self.url} has no model '{self.model_name}' (GET {self.model_path} "
                             "→ HTTP 404)",
                             hint="pass --cloud-model with the name the server serves the FP32 model under "
                                  "(default: the FP32 file's sha256, the name an edgekit agent uses)",
                             url=self.url, status_code=404)
        self.metadata = metadata
        self.check_inputs(self.reference.inputs)
        if agent and self._agent_info is None:
            self._agent_info = self.client.optional_json("/v1/info")
        self.server = self.client.server_metadata()

    def check_inputs(self, artifact_inputs: list[dict]) -> None:
        declared = self.metadata.get("inputs")
        if not declared:
            self.notes.append(f"the server does not declare the inputs of '{self.model_name}': not checked "
                              "against the artifact's")
            return
        problems = input_mismatches(declared, artifact_inputs)
        if problems:
            raise CloudModelMismatch(
                f"the cloud model '{self.model_name}' at {self.url} does not take the artifact's inputs: "
                f"{'; '.join(problems)} (server: {describe_inputs(declared)}; artifact: "
                f"{describe_inputs(artifact_inputs)})",
                hint="pass --cloud-model with the name of the same model on the server, or deploy the artifact's "
                     f"FP32 model ({self.reference.path.name}) there", url=self.url)

    # -- measurement ---------------------------------------------------------------------------------------

    def measure(self, sample: dict[str, np.ndarray], check: list[dict[str, np.ndarray]], *, warmup: int, runs: int,
                min_seconds: float) -> dict:
        self.choose_encoding(sample)
        body, headers = encode_request(sample, self.encoding == "binary")
        rtt = self._rtt(warmup, runs)
        before = self._triton_stats()
        e2e: list[float] = []
        compute: list[float] = []
        started = None
        for index in itertools.count():
            t0 = time.perf_counter()
            reply, binary, reply_bytes = self.client.infer(self.model_path, body, headers)
            self._decode(reply, binary)
            elapsed = time.perf_counter() - t0
            if index < warmup:
                continue
            started = started or t0
            e2e.append(elapsed)
            server_ms = (reply.get("parameters") or {}).get("edgekit_compute_ms")
            if isinstance(server_ms, (int, float)):
                compute.append(server_ms / 1e3)
            if len(e2e) >= runs and time.perf_counter() - started >= min_seconds:
                break  # at least ``runs`` calls and ``min_seconds``, like the runners' benchmark loop
        after = self._triton_stats()
        compute_section = None
        if compute and len(compute) == len(e2e):
            compute_section = {**latency_dict(compute, warmup), "source": "parameters.edgekit_compute_ms"}
        elif before is not None and after is not None and after[0] > before[0]:
            mean = (after[1] - before[1]) / (after[0] - before[0]) / 1e6
            compute_section = {"mean_ms": round(mean, 4), "runs": after[0] - before[0],
                               "source": f"{self.model_path}/stats (Triton compute_infer; a mean, no percentiles)"}
        else:
            self.notes.append("the server does not report its compute time (no parameters.edgekit_compute_ms, no "
                              f"{self.model_path}/stats): compute is null and the cloud's latency without the network "
                              "is taken as end-to-end minus the measured RTT")
        end_to_end = latency_dict(e2e, warmup)
        rtt_p50 = rtt["p50_ms"] if rtt else None
        overhead = None
        compute_p50 = (compute_section or {}).get("p50_ms", (compute_section or {}).get("mean_ms"))
        if compute_p50 is not None and rtt_p50 is not None:
            overhead = round(max(end_to_end["p50_ms"] - compute_p50 - rtt_p50, 0.0), 4)
        outputs = [self._outputs(feeds, self.encoding == "binary") for feeds in check]
        return {"kind": self.kind, "method": self._method(), "url": self.url, "model_name": self.model_name,
                "device": self._device(), "encoding": self.encoding,
                "payload_bytes": {"request": len(body), "reply": reply_bytes}, "compute": compute_section,
                "end_to_end": end_to_end, "network_rtt": rtt, "overhead_ms": overhead,
                "accuracy": accuracy_dict(self.reference, _per_sample(outputs, self.reference), self.notes),
                "server": {k: self.server.get(k) for k in ("name", "version") if self.server.get(k)} or None,
                "notes": self.notes}

    def choose_encoding(self, sample: dict[str, np.ndarray]) -> None:
        """Binary tensors where the server lists the extension and answers a binary request; else JSON (with a
        note saying why). A server error (5xx, or no answer) is not a reason to switch: it is raised."""
        extensions = self.server.get("extensions")
        if not isinstance(extensions, list) or BINARY_EXTENSION not in extensions:
            self.encoding = "json"
            self.notes.append(f"the server does not list the {BINARY_EXTENSION} extension (GET /v2): tensors were "
                              "sent and received as JSON")
            return
        try:
            self._outputs(sample, binary=True)
            self.encoding = "binary"
        except CloudError as error:
            if error.status_code is None or error.status_code >= 500 or error.status_code in (401, 403):
                raise
            self.encoding = "json"
            self.notes.append(f"the server lists {BINARY_EXTENSION} but refused a binary request ({error.message}): "
                              "tensors were sent and received as JSON")

    def _outputs(self, feeds: dict[str, np.ndarray], binary: bool) -> list[np.ndarray]:
        reply, tail, _ = self.client.infer(self.model_path, *encode_request(feeds, binary))
        return self._decode(reply, tail)

    def _decode(self, reply: dict, binary: bytes) -> list[np.ndarray]:
        try:
            return decode_outputs(reply, binary, self.reference.output_names)
        except (KeyError, TypeError, ValueError) as exc:
            raise CloudError(f"cloud endpoint {self.url}: an inference reply does not fit the KServe v2 protocol "
                             f"({type(exc).__name__}: {exc})", hint="the server must answer v2 tensors "
                             "(outputs[].name, shape, datatype, and data or parameters.binary_data_size)",
                             url=self.url) from exc

    def _rtt(self, warmup: int, runs: int) -> dict | None:
        samples = []
        for index in range(warmup + runs):
            t0 = time.perf_counter()
            response = self.client.request("GET", "/v2/health/ready", ok=(200, 401, 403, 404, 405, 503))
            elapsed = time.perf_counter() - t0
            if response.status_code != 200:
                self.notes.append(f"GET /v2/health/ready answered HTTP {response.status_code}: the network round trip "
                                  "is not measured and counts as cloud time")
                return None
            if index >= warmup:
                samples.append(elapsed)
        stats = latency_dict(samples, warmup)
        stats.pop("samples_ms")
        return {**stats, "how": "GET /v2/health/ready"}

    def _triton_stats(self) -> tuple[int, int] | None:
        """(count, total compute ns) of Triton-style statistics, or None when the server has none."""
        body = self.client.optional_json(f"{self.model_path}/stats")
        if body is None:
            return None
        try:
            stats = body["model_stats"][0]["inference_stats"]
            parts = [stats[k] for k in ("compute_input", "compute_infer", "compute_output")]
            return int(parts[1]["count"]), sum(int(p["ns"]) for p in parts)
        except (ValueError, KeyError, IndexError, TypeError):
            return None

    def _method(self) -> str:
        server = " ".join(str(self.server.get(k)) for k in ("name", "version") if self.server.get(k))
        platform = self.metadata.get("platform")
        details = ", ".join(p for p in (server, f"platform {platform}" if platform else "") if p)
        encoding = "binary tensors" if self.encoding == "binary" else "JSON tensors"
        return f"KServe v2 REST ({encoding}){f' — {details}' if details else ''}"

    def _device(self) -> str:
        if self._agent_info:
            info = self._agent_info
            return f"{info.get('cpu', '?')} ({info.get('cores', '?')} cores), edgekit agent"
        return f"unknown: a KServe v2 server at {self.url} (it does not describe its hardware)"

    # -- an edgekit agent as the cloud ---------------------------------------------------------------------

    def _is_edgekit_agent(self) -> bool:
        return (self.client.optional_json("/v1/health") or {}).get("agent") == "edgekit"

    def _upload_to_agent(self) -> None:
        from ...agent.client import AgentClient, AgentError

        try:
            with AgentClient(self.url, self.token) as agent:
                reply = agent.upload(self.reference.path)
                self._agent_info = agent.info()
        except AgentError as error:
            raise CloudError(f"the cloud endpoint is an edgekit agent without the model, and uploading "
                             f"{self.reference.path.name} failed: {error.message}", hint=error.hint,
                             url=self.url, status_code=error.status_code) from error
        if reply.get("uploaded"):
            self.notes.append(f"uploaded {self.reference.path.name} to the edgekit agent at {self.url}")


def _per_sample(outputs: list[list[np.ndarray]], reference: Reference) -> list[list[np.ndarray]]:
    """Each sample's outputs shaped like this host's (a server may drop or add a batch axis of 1)."""
    shaped = []
    for sample, host in zip(outputs, reference.outputs):
        if len(sample) != len(host):
            raise CloudError(f"the cloud model returned {len(sample)} outputs, the FP32 model has {len(host)} "
                             f"({reference.output_names})", hint="is the server's model the artifact's FP32 model?")
        try:
            shaped.append([np.reshape(out, ours.shape) for out, ours in zip(sample, host)])
        except ValueError as exc:
            raise CloudError(f"the cloud model's outputs do not fit the FP32 model's: {exc}",
                             hint="is the server's model the artifact's FP32 model?") from exc
    return shaped
