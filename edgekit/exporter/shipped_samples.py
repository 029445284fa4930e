"""The validation samples an artifact folder carries (``samples/validation.npz``), so a folder copied to another
machine still validates on real inputs: the first ``MAX_SAMPLES`` samples, at most ``MAX_BYTES``, saved with
numpy's format (no pickle) in the layout ``load_samples`` reads."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ..data import SampleSet
from ..data.samples import LABELS_KEY
from ..files import sha256_file

SHIPPED_FILE = "samples/validation.npz"
MAX_SAMPLES = 64
MAX_BYTES = 16 * 1024 * 1024


def ship_samples(validation: SampleSet, folder: Path, max_samples: int = MAX_SAMPLES,
                 max_bytes: int = MAX_BYTES) -> dict:
    """Write the first samples of ``validation`` into ``folder`` (a staged artifact folder) and return the
    manifest's ``data.validation`` record: the data's own record plus ``shipped`` (what the folder carries)."""
    total = len(validation)
    per_sample = sum(array.nbytes for array in validation.inputs.values()) / total
    count = min(total, max_samples, int(max_bytes // per_sample) if per_sample else max_samples)
    record = validation.describe(folder)
    if count == 0:
        reason = (f"one sample is {per_sample / 2**20:.1f} MiB, over the {max_bytes / 2**20:g} MiB the folder "
                  "carries: validate needs the original data (--val)")
        record["shipped"] = {"file": None, "samples": 0, "of": total, "bytes": 0, "sha256": None, "reason": reason}
        return record
    head = validation.head(count)
    arrays = dict(head.inputs)
    if head.labels is not None:
        arrays[LABELS_KEY] = head.labels
    path = Path(folder) / SHIPPED_FILE
    path.parent.mkdir(exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:  # np.savez's layout, whatever the inputs are named
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asanyarray(array), allow_pickle=False)
    reason = None if count == total else (f"the first {count} of {total} samples (the folder carries at most "
                                          f"{max_samples} samples and {max_bytes / 2**20:g} MiB)")
    record["shipped"] = {"file": SHIPPED_FILE, "samples": count, "of": total, "bytes": path.stat().st_size,
                         "sha256": sha256_file(path), "reason": reason}
    return record
