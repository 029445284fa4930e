"""KServe's own Python client (``kserve.InferenceRESTClient``, protocol v2) against an edgekit agent.

Run by tests/interop/test_v2_interop.py with the interpreter of the venv that scripts/setup-kserve-client.sh
makes, so it imports nothing from edgekit (nor from testkit):

    .venv-kserve/bin/python testkit/kserve_client_check.py URL TOKEN MODEL INPUTS.npz OUT.npz

For each array in INPUTS.npz (keyed by input name; axis 0 = samples, each sent at batch 1) it runs one inference
with JSON tensors and one with binary tensors (binary outputs asked for too), and writes
``{encoding}_{output}`` arrays stacked over samples to OUT.npz, with the readiness answers in ``ready_*``.
"""

from __future__ import annotations

import asyncio
import sys

import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

ENCODINGS = {"json": False, "binary": True}


async def check(url: str, token: str, model: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    headers = {"Authorization": f"Bearer {token}"}
    client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=60))
    results: dict[str, np.ndarray] = {
        "ready_server_live": np.array(await client.is_server_live(url)),  # no token: the liveness check
        "ready_server": np.array(await client.is_server_ready(url, headers=headers)),
        "ready_model": np.array(await client.is_model_ready(url, model, headers=headers)),
        "ready_unknown_model": np.array(await client.is_model_ready(url, "0" * 64, headers=headers))}
    collected: dict[str, list[np.ndarray]] = {}
    count = len(next(iter(inputs.values())))
    for index in range(count):
        for encoding, binary in ENCODINGS.items():
            tensors = []
            for name, array in inputs.items():
                sample = array[index:index + 1]
                tensor = InferInput(name, list(sample.shape), "FP32")
                tensor.set_data_from_numpy(sample, binary_data=binary)
                tensors.append(tensor)
            request = InferRequest(model, tensors, parameters={"binary_data_output": binary})
            response = await client.infer(url, request, model_name=model, headers=dict(headers))
            for output in response.outputs:
                collected.setdefault(f"{encoding}_{output.name}", []).append(output.as_numpy())
    await client.close()
    results.update({key: np.concatenate(arrays) for key, arrays in collected.items()})
    return results


def main() -> int:
    url, token, model, inputs_path, out_path = sys.argv[1:6]
    with np.load(inputs_path) as npz:
        inputs = {name: npz[name] for name in npz.files}
    np.savez(out_path, **asyncio.run(check(url, token, model, inputs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
