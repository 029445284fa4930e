"""Property-based: whatever a user feeds the loaders (data, input specs, target profiles, edgekit.toml, artifact
manifests), the answer is a result or an ``EdgekitError`` with a message, never another exception."""

from __future__ import annotations

import json
import string
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgekit.data import load_samples
from edgekit.errors import EdgekitError
from edgekit.exporter.options import load_project
from edgekit.manifest import Manifest
from edgekit.specs import InputSpec, parse_input_spec
from edgekit.targets import load_target

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SPEC = [InputSpec("x", (1, 3, 4, 4), "float32")]

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                      max_size=4), max_leaves=12)
toml_values = st.recursive(st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False)
                           | st.text(max_size=12),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                               st.text(string.ascii_lowercase + "_", min_size=1, max_size=10), inner, max_size=3),
                           max_leaves=8)
profile_keys = st.sampled_from(["name", "arch", "formats", "precisions", "threads", "opset", "graph_optimization",
                                "channels_last_io", "quantization", "accuracy", "latency", "description", "x"])


def _toml(data: dict) -> str:
    import tomli_w

    return tomli_w.dumps(data)


def _loads_or_edgekit_error(call) -> None:
    try:
        call()
    except EdgekitError as error:
        assert error.message and error.exit_code in (2, 3)


@SETTINGS
@given(st.text(max_size=40))
def test_input_specs(text):
    _loads_or_edgekit_error(lambda: parse_input_spec(text))


arrays = st.one_of(
    st.builds(lambda shape, kind: np.zeros(shape, dtype=kind),
              st.lists(st.integers(0, 5), min_size=0, max_size=5).map(tuple),
              st.sampled_from(["float32", "float64", "int64", "int8", "bool", "uint8", "complex64", "U3", "S2",
                               "datetime64[s]"])),
    st.lists(st.floats(width=32), min_size=1, max_size=48).map(lambda v: np.array(v, np.float32)),
)


@SETTINGS
@given(st.dictionaries(st.sampled_from(["x", "labels", "y", "X"]), arrays, max_size=3))
def test_data_files(contents):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "data.npz"
        np.savez(path, **contents)
        _loads_or_edgekit_error(lambda: load_samples(path, SPEC))


@SETTINGS
@given(st.binary(max_size=64))
def test_data_files_of_random_bytes(content):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "data.npz"
        path.write_bytes(content)
        _loads_or_edgekit_error(lambda: load_samples(path, SPEC))


@SETTINGS
@given(st.dictionaries(profile_keys, toml_values, max_size=6))
def test_target_profiles(data):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "p.toml"
        path.write_text(_toml(data))
        _loads_or_edgekit_error(lambda: load_target(path))


@SETTINGS
@given(st.text(max_size=80))
def test_target_profile_text(text):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "p.toml"
        path.write_text(text)
        _loads_or_edgekit_error(lambda: load_target(path))


@SETTINGS
@given(st.dictionaries(st.sampled_from(["model", "target", "inputs", "calib", "val", "out", "format",
                                        "dynamic_batch", "other"]), toml_values, max_size=5))
def test_project_files(data):
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "edgekit.toml").write_text(_toml(data))
        _loads_or_edgekit_error(lambda: load_project(Path(folder)))


manifest_like = st.fixed_dictionaries(
    {"schema": st.sampled_from(["edgekit.manifest/3", "edgekit.manifest/2", "x"]), "target": json_values, "inputs": json_values,
     "artifacts": st.lists(st.dictionaries(st.sampled_from(["name", "file", "format", "precision", "passed",
                                                            "sha256"]), json_values), max_size=3) | json_values})


@SETTINGS
@given(json_values | manifest_like)
def test_manifests(data):
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "manifest.json").write_text(json.dumps(data))
        _loads_or_edgekit_error(lambda: Manifest.load(Path(folder)))
