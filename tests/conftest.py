"""Fixtures and markers for every folder of the suite (unit/, system/, interop/, fuzz/, emulated/).

Helpers live in the ``testkit`` package at the repository root (the benches import them too): import them from
there, not from this file.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest

from testkit import smooth_images


def pytest_configure(config):
    """torch's and executorch's modules attach logging StreamHandlers to ``sys.stderr`` as it is when they are
    first imported. Typer's CliRunner swaps ``sys.stderr`` for each invoke and closes it afterwards, so a module
    first imported inside one invoke would make later logging fail ("--- Logging error ---" with a traceback in
    another test's output). Import them once here, with the real stderr."""
    from edgekit.quiet import quiet

    with contextlib.suppress(ImportError), quiet(native=True):
        import executorch.exir  # noqa: F401
        import torch.fx.passes.utils.matcher_utils  # noqa: F401


@pytest.fixture(autouse=True)
def every_json_written_is_strict(request):
    """After each test that used ``tmp_path``: every ``.json`` file under it (manifests, validation.json,
    report.json, the agent's store records) that Python's lenient parser reads also parses with a strict one
    (no NaN/Infinity tokens). Files a test wrote broken on purpose fail both and are left alone."""
    folder = request.getfixturevalue("tmp_path") if "tmp_path" in request.fixturenames else None
    yield
    if folder is None:
        return
    import json

    from edgekit.files import parse_json

    for path in folder.rglob("*.json"):
        try:
            text = path.read_text(encoding="utf-8")
            json.loads(text)
        except (OSError, ValueError, RecursionError):
            continue
        try:
            parse_json(text)
        except ValueError as exc:
            pytest.fail(f"{path} is not strict JSON: {exc}")


@pytest.fixture(scope="session", autouse=True)
def every_manifest_written_round_trips(tmp_path_factory):
    """After the session: every manifest.json edgekit wrote under the session's temp folders (its indented form;
    tests that edit one by hand write it on one line) reads into ``Manifest`` and dumps back byte for byte."""
    yield
    from edgekit.manifest import MANIFEST_SCHEMA, Manifest

    written = f'{{\n  "schema": "{MANIFEST_SCHEMA}",\n'
    for path in tmp_path_factory.getbasetemp().rglob("manifest.json"):
        text = path.read_text(encoding="utf-8", errors="replace")
        if text.startswith(written):
            assert Manifest.parse(text, str(path)).model_dump_json(indent=2) + "\n" == text, f"{path} changed"


@pytest.fixture(scope="session")
def cnn_data(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("cnn-data")
    np.savez(folder / "calib.npz", x=smooth_images(32, seed=1))
    np.savez(folder / "val.npz", x=smooth_images(24, seed=2))
    return {"calib": folder / "calib.npz", "val": folder / "val.npz"}


def pytest_configure(config):
    config.addinivalue_line("markers", "emulated: needs the emulated ARM64 device (scripts/arm64-device.sh, root, "
                                       "qemu-user-static); run with `make test-emulated`")
    config.addinivalue_line("markers", "cpu_sensitive: the outcome depends on this CPU's capabilities (bf16, VNNI, "
                                       "AMX: which candidates are built, which kernels run, what INT8 loses); "
                                       "tests/system/test_cpu_masked.py reruns these with AVX-512 masked off")


def pytest_collection_modifyitems(config, items):
    """Emulated-device tests run only when asked for (`-m emulated`): they need root and take many minutes."""
    if "emulated" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="emulated ARM64 device test: run `make test-emulated` (root, qemu-user-static)")
    for item in items:
        if item.get_closest_marker("emulated"):
            item.add_marker(skip)
