"""What every compression command does around its method: the options they share, the cluster, the models and
data, the checkpoint folder, and the result folder with its record (written by rank 0 only, atomically)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._version import __version__
from ..data.images import PreprocessSpec, parse_preprocess
from ..errors import InputError
from ..exporter.artifact_dir import StagedFolder
from ..exporter.ownership import own_entries, run_inputs
from ..exporter.sources import TorchSource, load_source
from ..files import write_json_atomic
from . import checkpoint
from .data import LabeledData, check_labels, load_labeled
from .distributed import SHARDINGS, Cluster, start
from .measure import compare_runtimes
from .progress import SilentTraining
from .record import (
    RECORD_FILE,
    SCHEMA,
    WEIGHTS_FILE,
    architecture_edits,
    find_record,
    fold_batchnorm_modules,
    read_record,
)
from .trainer import Run, TrainResult, TrainSettings, evaluate, logits_of

VALIDATION_SPLIT = 0.1


@dataclass
class Options:
    """The options the three commands share (the API's keyword arguments of the same names)."""

    train: str | Path
    val: str | Path | None = None
    out: str | Path | None = None
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    preprocess: str | PreprocessSpec | None = None
    sharding: str = "replicate"
    device: str = "auto"
    backend: str = "auto"
    resume: bool = False
    overwrite: bool = False
    measure: bool = True
    threads: int | None = None
    progress: SilentTraining | None = None
    on_epoch_end: Callable[[int], None] | None = None

    @property
    def settings(self) -> TrainSettings:
        return TrainSettings(self.epochs, self.batch_size, self.lr, self.weight_decay, self.seed)


@dataclass
class LoadedModel:
    """A PyTorch model to compress, with the architecture it is rebuilt from and its number of classes."""

    source: TorchSource
    architecture: dict[str, Any]
    classes: int
    lineage: list[dict] = field(default_factory=list)

    @property
    def module(self):
        return self.source.module

    @property
    def example_args(self) -> tuple:
        import torch

        return tuple(torch.from_numpy(self.source.examples[s.name]) for s in self.source.inputs)

    @property
    def spec(self):
        return self.source.inputs[0]


@dataclass
class CompressResult:
    """What a command produced. ``out_dir`` is None on ranks other than 0 (they write nothing)."""

    out_dir: Path | None
    record: dict[str, Any]
    module: Any


def load_model(reference: str, role: str) -> LoadedModel:
    """A single-input classifier from a factory or a compressed-model folder."""
    source = load_source(reference)
    if not isinstance(source, TorchSource):
        kind = {"onnx": "an ONNX", "tflite": "a TFLite"}.get(source.kind, source.kind)
        raise InputError(f"the {role} {reference} is {kind} file; compression trains a PyTorch model",
                         hint="pass a factory (file.py:factory or pkg.mod:factory) or an `edgekit compress` folder")
    if len(source.inputs) != 1:
        raise InputError(f"the {role} {reference} takes {len(source.inputs)} inputs; compression trains "
                         "single-input classifiers", hint="wrap the model so it takes one input tensor")
    model = LoadedModel(source, {}, 0)
    import torch

    with torch.no_grad():
        logits = logits_of(source.module(*model.example_args))
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise InputError(f"the {role} {reference} returns {shape}; compression trains classifiers that return "
                         "logits of shape (batch, classes)", hint="return the class logits from forward()")
    model.classes = int(logits.shape[1])
    record_path = find_record(reference)
    if record_path is not None:
        prior = read_record(reference)
        model.architecture = {k: v for k, v in prior["architecture"].items() if k != "factory_relative"}
        model.lineage = prior.get("lineage", []) + [{"method": prior["method"], "folder": str(record_path.parent)}]
    else:
        model.architecture = _factory_architecture(source)
    return model


def model_name(reference: str) -> str:
    """A short name for default output folders: the file's stem, the folder's name or the factory's name."""
    target, _, attr = reference.rpartition(":")
    return Path(target).stem if target.endswith(".py") else Path(reference).name if not attr else attr


def _factory_architecture(source: TorchSource) -> dict[str, Any]:
    factory = source.reference
    if source.path is not None:
        factory = f"{source.path}:{source.reference.rpartition(':')[2]}"
    described = source.describe()
    return {"factory": factory, "factory_sha256": described.get("sha256"),
            "inputs": [s.to_dict() for s in source.inputs], "edits": {"fold_batchnorm": [], "attributes": {}}}


def fresh_module(architecture: dict[str, Any]):
    """A new instance of the root factory with the recorded BatchNorm folds (for diffing shape edits)."""
    module = load_source(architecture["factory"]).module
    fold_batchnorm_modules(module, architecture["edits"]["fold_batchnorm"], weights=None)
    return module


class Job:
    """One command's run: checks, cluster, data, checkpoint folder and the staged result folder."""

    def __init__(self, method: str, options: Options, default_name: str):
        options.settings.check()
        if options.sharding not in SHARDINGS:
            raise InputError(f"unknown sharding '{options.sharding}'", hint=f"use one of: {', '.join(SHARDINGS)}")
        self.method, self.options = method, options
        self.progress = options.progress or SilentTraining()
        self.preprocess = parse_preprocess(options.preprocess) if isinstance(options.preprocess, (str, Path)) \
            else options.preprocess
        self.out = Path(options.out or Path("edgekit-out") / f"{default_name}-{method}").absolute()
        self.checkpoints = checkpoint.checkpoint_folder(self.out)
        if options.threads is not None:
            import torch

            torch.set_num_threads(options.threads)
        self.cluster: Cluster = start(options.device, options.backend, options.sharding)
        self.staged: StagedFolder | None = None
        self.started = time.time()

    # ---- set-up -------------------------------------------------------------------------------------------
    def load_data(self, model: LoadedModel) -> tuple[LabeledData, LabeledData, list[str]]:
        """Training and validation data for ``model``'s input (10 % of the training data when no --val)."""
        notes = []
        with self.progress.step("load data"):
            train = load_labeled(self.options.train, model.spec, self.preprocess, "training")
            if self.options.val is not None:
                val = load_labeled(self.options.val, model.spec, self.preprocess, "validation")
            else:
                train, val = _split(train, VALIDATION_SPLIT, self.options.seed)
                notes.append(f"no --val: {len(val)} training samples ({VALIDATION_SPLIT:.0%}) held out for validation")
            check_labels(train, model.classes, "training")
            check_labels(val, model.classes, "validation")
        return train, val, notes

    def prepare_output(self, *models: str | Path) -> None:
        """Refuse a finished folder or a stale checkpoint before any training; stage the result folder (never
        over the folder of ``models`` or of the data)."""
        has_checkpoint = (self.checkpoints / checkpoint.STATE_FILE).is_file()
        if has_checkpoint and not self.options.resume:
            raise InputError(f"an interrupted run left a checkpoint in {self.checkpoints}",
                             hint="pass --resume to continue it, or remove that folder to start again")
        if self.options.resume and not has_checkpoint:
            raise InputError(f"nothing to resume: no checkpoint in {self.checkpoints}",
                             hint="run without --resume, or pass the same --out as the interrupted run")
        if self.cluster.is_main:
            inputs = run_inputs(*models, self.options.train, self.options.val)
            self.staged = StagedFolder(self.out, overwrite=self.options.overwrite, inputs=inputs, kind="compressed")

    def run(self, fingerprint: dict[str, Any], set_mode=None) -> Run:
        run = Run(self.cluster, self.options.settings, self.checkpoints, fingerprint, self.options.resume,
                  self.options.sharding != "replicate", self.progress, self.options.on_epoch_end)
        if set_mode is not None:
            run.set_mode = set_mode
        return run

    def accuracy(self, module, data: LabeledData) -> float:
        """Label accuracy of an unwrapped module (every rank scores its slice)."""
        return evaluate(module.to(self.cluster.device), data, self.cluster, self.options.batch_size)

    # ---- result -------------------------------------------------------------------------------------------
    def record(self, model: LoadedModel, final, folded: list[list[str]], train: LabeledData, val: LabeledData,
               result: TrainResult, provenance: dict[str, Any]) -> dict[str, Any]:
        """The record of the result: how to rebuild it, where it came from, how it trained. ``folded``: the
        BatchNorms this run folded (those of an already-compressed source are carried over)."""
        architecture = dict(model.architecture)
        folded = architecture["edits"]["fold_batchnorm"] + folded
        architecture["edits"] = architecture_edits(fresh_module(architecture), final, folded)
        target = architecture["factory"].rpartition(":")[0]
        if target.endswith(".py"):
            architecture["factory_relative"] = os.path.relpath(target, self.out)
        return {
            "schema": SCHEMA, "method": self.method, "edgekit_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.started)),
            "weights": WEIGHTS_FILE, "architecture": architecture,
            "source": {"model": model.source.reference, **{k: v for k, v in model.source.describe().items()
                                                             if k in ("sha256", "kind")}},
            "lineage": model.lineage,
            "provenance": {**provenance, "epochs": self.options.epochs, "settings": self.options.settings.to_dict(),
                           "data": {"train": train.describe(), "validation": val.describe()},
                           **self.cluster.describe(), "sharding": self.options.sharding},
            "training": result.describe(), "metrics": {}, "notes": [],
        }

    def write(self, module, record: dict[str, Any]) -> Path:
        """Weights and record into the staged folder (rank 0); returns the staged path for measuring."""
        from safetensors.torch import save_file

        state = {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}
        save_file(state, str(self.staged.path / WEIGHTS_FILE), metadata={"format": "pt", "edgekit": SCHEMA})
        self.staged.write_json(RECORD_FILE, record)
        return self.staged.path

    def commit_measured(self, module, record: dict[str, Any], before: str, measure_target: str,
                        speed_notes: Callable[[dict[str, Any]], list[str]]) -> Path:
        """Write the result; with ``measure``, time it against ``before`` and add ``speed_notes(runtimes)``; commit."""
        staged = self.write(module, record)
        if self.options.measure:
            runtimes = compare_runtimes(before, str(staged), self.options.val, measure_target, self.progress)
            record["metrics"]["runtimes"] = runtimes
            record["notes"] += speed_notes(runtimes)
        return self.commit(record)

    def commit(self, record: dict[str, Any]) -> Path:
        """Rename the staged folder into place and drop the checkpoints (the best epoch is the result now)."""
        record["seconds"] = round(time.time() - self.started, 1)
        self.staged.write_json(RECORD_FILE, record)
        final = self.staged.commit()
        self.staged = None
        checkpoint.remove(self.checkpoints)
        return final

    @staticmethod
    def update_record(folder: Path, record: dict[str, Any], added: tuple[str, ...] = ()) -> None:
        """Replace the record of a committed folder (atomically) with more figures; ``added``: entries written
        into the folder since its commit (edgekit's, for a later --overwrite)."""
        write_json_atomic(folder / RECORD_FILE, record)
        own_entries(folder, added)

    def fail(self) -> None:
        """Remove the staged folder (the checkpoint folder stays for --resume)."""
        if self.staged is not None:
            self.staged.discard()

    def close(self) -> None:
        self.cluster.close()


def _split(data: LabeledData, fraction: float, seed: int) -> tuple[LabeledData, LabeledData]:
    import numpy as np
    import torch

    order = np.random.default_rng(seed).permutation(len(data))
    held = max(1, int(len(data) * fraction))
    parts = []
    for indices in (np.sort(order[held:]), np.sort(order[:held])):
        subset = torch.utils.data.Subset(data.dataset, indices.tolist())
        parts.append(LabeledData(subset, data.labels[indices], data.origin, data.sha256, data.kind, data.preprocess))
    return parts[0], parts[1]
