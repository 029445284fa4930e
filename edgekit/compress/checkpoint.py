"""Resumable training state without pickle: safetensors for tensors, JSON for the rest, written atomically.

A checkpoint folder (``OUT.checkpoints/`` beside the result folder) holds, after every epoch:
``last.model.safetensors``, ``last.optim.safetensors`` (optimizer tensors keyed ``PARAM/NAME``),
``best.model.safetensors`` (the weights with the best validation accuracy so far) and ``state.json`` (epoch done,
history, best epoch, optimizer hyperparameters, the run's settings and the sha256 of each tensor file).
``state.json`` is replaced last, so a kill at any moment leaves the previous epoch's complete checkpoint; the
digests refuse a mixed or damaged set. Only rank 0 writes; every rank reads (a shared filesystem across nodes).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..files import is_plain_file, sha256_file, write_json_atomic

STATE_FILE = "state.json"
FORMAT = "edgekit.checkpoint/1"
FILES = ("last.model.safetensors", "last.optim.safetensors", "best.model.safetensors", STATE_FILE, ".best.tmp",
         ".last.model.safetensors.tmp", ".last.optim.safetensors.tmp")


@dataclass
class TrainingState:
    """What a resumed run needs besides the tensors."""

    epochs_done: int = 0
    best_epoch: int | None = None
    best_accuracy: float | None = None
    history: list[dict[str, float]] = field(default_factory=list)


def checkpoint_folder(out: Path) -> Path:
    return out.parent / f"{out.name}.checkpoints"


def remove(folder: Path) -> None:
    """Delete the checkpoint files edgekit wrote in ``folder``, then the folder if nothing else is left in it."""
    for name in FILES:
        path = folder / name
        if is_plain_file(path):
            path.unlink()
    for temp in folder.glob(f".{STATE_FILE}.tmp-*") if folder.is_dir() else ():
        if is_plain_file(temp):
            temp.unlink()
    try:
        folder.rmdir()
    except OSError:  # missing, or the user keeps other files there
        pass


def save(folder: Path, settings: dict[str, Any], state: TrainingState, model_state: dict, optim_state: dict,
         improved: bool) -> None:
    """Write the epoch's checkpoint (rank 0 only)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    tensors, groups = _flatten_optimizer(optim_state)
    _save_atomic(save_file, _contiguous(model_state), folder / "last.model.safetensors")
    _save_atomic(save_file, tensors, folder / "last.optim.safetensors")
    if improved:
        shutil.copyfile(folder / "last.model.safetensors", folder / ".best.tmp")
        os.replace(folder / ".best.tmp", folder / "best.model.safetensors")
    digests = {name: sha256_file(folder / name) for name in
               ("last.model.safetensors", "last.optim.safetensors", "best.model.safetensors")
               if (folder / name).is_file()}
    document = {"format": FORMAT, "settings": settings, "epochs_done": state.epochs_done,
                "best_epoch": state.best_epoch, "best_accuracy": state.best_accuracy, "history": state.history,
                "param_groups": groups, "sha256": digests}
    write_json_atomic(folder / STATE_FILE, document)


def load(folder: Path, settings: dict[str, Any]) -> tuple[TrainingState, dict, dict]:
    """(state, model tensors, optimizer state) of the last complete epoch; the settings must be the same."""
    from safetensors.torch import load_file

    path = folder / STATE_FILE
    if not path.is_file():
        raise InputError(f"nothing to resume: no checkpoint in {folder}",
                         hint="run without --resume to start, or pass the same --out as the interrupted run")
    try:
        document = json.loads(path.read_text())
    except ValueError as exc:
        raise InputError(f"cannot read {path}: {exc}", hint="remove the checkpoint folder and start again") from exc
    if document.get("format") != FORMAT:
        raise InputError(f"{path} is not an edgekit checkpoint", hint="remove the folder and start again")
    changed = sorted(k for k in settings.keys() | document["settings"].keys()
                     if settings.get(k) != document["settings"].get(k))
    if changed:
        detail = ", ".join(f"{k}: {document['settings'].get(k)!r} then, {settings.get(k)!r} now" for k in changed[:4])
        raise InputError(f"the checkpoint in {folder} was made with other settings ({detail})",
                         hint="resume with the same command line, or remove the checkpoint folder to start again")
    for name, digest in document["sha256"].items():
        if not (folder / name).is_file() or sha256_file(folder / name) != digest:
            raise InputError(f"checkpoint file {folder / name} is missing or does not match {STATE_FILE}",
                             hint="remove the checkpoint folder and start again")
    state = TrainingState(document["epochs_done"], document["best_epoch"], document["best_accuracy"],
                          document["history"])
    model_state = load_file(folder / "last.model.safetensors")
    optim_state = _unflatten_optimizer(load_file(folder / "last.optim.safetensors"), document["param_groups"])
    return state, model_state, optim_state


def load_best(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(folder / "best.model.safetensors")


def _flatten_optimizer(optim_state: dict) -> tuple[dict, list[dict]]:
    """FQN-keyed optimizer state (``get_optimizer_state_dict``) → flat tensors + JSON-able param groups."""
    import torch

    tensors = {}
    for param, values in optim_state["state"].items():
        for name, value in values.items():
            tensors[f"{param}/{name}"] = value if isinstance(value, torch.Tensor) else torch.tensor(value)
    groups = [{k: list(v) if isinstance(v, tuple) else v for k, v in group.items()}
              for group in optim_state["param_groups"]]
    return _contiguous(tensors), groups


def _unflatten_optimizer(tensors: dict, groups: list[dict]) -> dict:
    state: dict[str, dict] = {}
    for key, value in tensors.items():
        param, _, name = key.rpartition("/")
        state.setdefault(param, {})[name] = value
    groups = [{k: tuple(v) if k == "betas" else v for k, v in group.items()} for group in groups]
    return {"state": state, "param_groups": groups}


def _contiguous(tensors: dict) -> dict:
    return {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}  # no shared storage (safetensors)


def _save_atomic(save_file, tensors: dict, path: Path) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(temp))
    with open(temp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(temp, path)
