"""Every bundled target profile's export of the digits sample writes a manifest that the typed model reads and
writes back unchanged, with no absolute path of the data in it, and that validate's data lookup reads from a copy
of the folder on its shipped samples."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edgekit import export
from edgekit.evaluate.devices import validation_data
from edgekit.manifest import Manifest
from testkit import REPO

DIGITS = REPO / "samples" / "digits"


@pytest.mark.parametrize("target", sorted(p.stem for p in (REPO / "targets").glob("*.toml")))
def test_a_bundled_profile_export_round_trips_through_the_model(target: str, tmp_path: Path):
    result = export(f"{DIGITS / 'model.py'}:build", target, out=tmp_path / "out", calib=DIGITS / "calib.npz",
                    val=DIGITS / "val.npz", benchmark=False)
    text = (result.out_dir / "manifest.json").read_text()
    manifest = Manifest.load(result.out_dir)
    assert manifest.model_dump_json(indent=2) + "\n" == text and manifest.to_dict() == result.manifest
    assert manifest.built and manifest.target.name == target
    for record in (manifest.data.calibration, manifest.data.validation):
        assert not Path(record.path).is_absolute() and record.origin in ("calib.npz", "val.npz")
        assert (result.out_dir / record.path).resolve() == DIGITS / record.origin
    moved = tmp_path / "a" / "b" / "moved"
    shutil.copytree(result.out_dir, moved)
    data, notes = validation_data(None, Manifest.load(moved), moved, 64)
    assert len(data) == 64 and data.labels is not None and "the folder ships" in notes[0]
