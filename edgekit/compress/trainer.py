"""The training loop every compression method shares: data parallel, validated each epoch, resumable.

Determinism is part of the contract: the shuffle is seeded per epoch (``DistributedSampler``), the global RNG is
re-seeded per epoch and rank, and the learning rate is a function of the epoch (cosine). So a run resumed from
the checkpoint of epoch k continues exactly as the uninterrupted run would have, and N processes with a batch of
B/N each take the same steps as one process with batch B.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from . import checkpoint
from .data import LabeledData
from .distributed import Cluster, all_sum, check_batch, full_state, max_divergence, sync_buffers, unwrap
from .progress import SilentTraining


@dataclass(frozen=True)
class TrainSettings:
    """Hyperparameters of a fine-tuning run (``batch_size`` is the global batch, split across processes)."""

    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0

    def check(self) -> None:
        if self.epochs < 1:
            raise InputError(f"epochs must be at least 1, got {self.epochs}", hint="pass --epochs 10")
        if not self.lr > 0:
            raise InputError(f"the learning rate must be positive, got {self.lr}", hint="pass --lr 0.001")
        if self.weight_decay < 0:
            raise InputError(f"weight decay must not be negative, got {self.weight_decay}",
                             hint="pass --weight-decay 0")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    best_state: dict | None
    best_accuracy: float
    best_epoch: int
    history: list[dict[str, float]] = field(default_factory=list)
    divergence: float = 0.0
    resumed_from_epoch: int = 0

    def describe(self) -> dict:
        return {"best_epoch": self.best_epoch, "best_val_accuracy": self.best_accuracy, "history": self.history,
                "resumed_from_epoch": self.resumed_from_epoch,
                "max_weight_difference_across_ranks": self.divergence}


# loss and logits for one batch: (model, inputs, labels) -> (loss, logits)
Objective = Callable[[Any, Any, Any], tuple[Any, Any]]


def logits_of(output) -> Any:
    """The classifier output of a forward pass (a tensor, or the first tensor of a tuple/list)."""
    while isinstance(output, (tuple, list)):
        output = output[0]
    return output


def cross_entropy(model, inputs, labels):
    import torch.nn.functional as F

    logits = logits_of(model(inputs))
    return F.cross_entropy(logits, labels), logits


def switch_mode(model, training: bool) -> None:
    """``model.train()`` / ``model.eval()``; a PT2E graph brings its own (``quantization._set_mode``)."""
    model.train(training)


@dataclass
class Run:
    """One training run's fixed context: where it runs, where it checkpoints, how it reports."""

    cluster: Cluster
    settings: TrainSettings
    checkpoints: Path
    fingerprint: dict[str, Any]
    resume: bool = False
    sharded: bool = False
    progress: SilentTraining = field(default_factory=SilentTraining)
    on_epoch_end: Callable[[int], None] | None = None
    set_mode: Callable[[Any, bool], None] = switch_mode


def train(model, objective: Objective, train_data: LabeledData, val_data: LabeledData, run: Run) -> TrainResult:
    """Fine-tune ``model`` (already wrapped for the cluster) and return the best validation epoch's weights."""
    import torch

    cluster, settings = run.cluster, run.settings
    loader, sampler = _train_loader(train_data, settings, cluster)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=settings.lr,
                                  weight_decay=settings.weight_decay)
    state = checkpoint.TrainingState()
    sharded = run.sharded and cluster.distributed
    if run.resume:
        state, model_state, optim_state = checkpoint.load(run.checkpoints, run.fingerprint)
        _load_states(model, optimizer, model_state, optim_state, sharded)
    resumed_from = state.epochs_done
    for epoch in range(state.epochs_done, settings.epochs):
        started = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = settings.lr * 0.5 * (1 + math.cos(math.pi * epoch / settings.epochs))
        sampler.set_epoch(epoch)
        torch.manual_seed(settings.seed * 100_003 + epoch * 1_009 + cluster.rank)
        if cluster.is_main:
            run.progress.start_epoch(epoch + 1, settings.epochs, len(loader))
        run.set_mode(model, True)
        loss_sum, correct, seen = _train_epoch(model, objective, optimizer, loader, cluster, run.progress)
        sync_buffers(model, cluster)
        loss_sum, correct, seen = all_sum([loss_sum, correct, seen], cluster)
        if not math.isfinite(loss_sum):  # summed over every process, so all of them stop here together
            raise InputError(f"training diverged: the loss became {loss_sum / seen} in epoch {epoch + 1}",
                             hint=f"lower the learning rate (--lr {settings.lr:g} now)")
        val_accuracy = evaluate(model, val_data, cluster, settings.batch_size, run.set_mode)
        improved = state.best_accuracy is None or val_accuracy > state.best_accuracy
        if improved:
            state.best_accuracy, state.best_epoch = val_accuracy, epoch + 1
        figures = {"epoch": epoch + 1, "train_loss": loss_sum / seen, "train_accuracy": correct / seen,
                   "val_accuracy": val_accuracy, "seconds": time.perf_counter() - started}
        state.history.append(figures)
        state.epochs_done = epoch + 1
        model_state = full_state(model, cluster, run.sharded)
        optim_state = _optimizer_state(model, optimizer, sharded)
        if cluster.is_main:
            checkpoint.save(run.checkpoints, run.fingerprint, state, model_state, optim_state, improved)
            run.progress.end_epoch(figures, improved)
        cluster.barrier()
        if run.on_epoch_end is not None:
            run.on_epoch_end(epoch + 1)
    divergence = max_divergence(full_state(model, cluster, run.sharded), cluster)
    best = checkpoint.load_best(run.checkpoints) if cluster.is_main else None
    return TrainResult(best, state.best_accuracy, state.best_epoch, state.history, divergence, resumed_from)


def evaluate(model, data: LabeledData, cluster: Cluster, batch_size: int,
             set_mode: Callable[[Any, bool], None] = switch_mode) -> float:
    """Label accuracy on ``data``, each process scoring an equal slice (padding masked out), summed over all."""
    import torch

    count = len(data)
    per_rank = math.ceil(count / cluster.world_size)
    indices = [cluster.rank * per_rank + i for i in range(per_rank)]
    valid = torch.tensor([i < count for i in indices])
    subset = torch.utils.data.Subset(data.dataset, [i if i < count else 0 for i in indices])
    loader = torch.utils.data.DataLoader(subset, batch_size=max(1, batch_size // cluster.world_size))
    correct, offset = 0.0, 0
    set_mode(model, False)
    with torch.no_grad():
        for inputs, labels in loader:
            logits = logits_of(model(inputs.to(cluster.device)))
            mask = valid[offset:offset + len(labels)].to(cluster.device)
            correct += float(((logits.argmax(1) == labels.to(cluster.device)) & mask).sum())
            offset += len(labels)
    correct, total = all_sum([correct, float(valid.sum())], cluster)
    return correct / total


def _optimizer_state(model, optimizer, sharded: bool) -> dict:
    """The optimizer's state keyed by parameter name (gathered whole from the shards under FSDP2)."""
    if sharded:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        return get_optimizer_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True))
    names = _trainable_names(model)
    raw = optimizer.state_dict()
    return {"state": {names[index]: values for index, values in raw["state"].items()},
            "param_groups": [{**group, "params": [names[i] for i in group["params"]]} for group in raw["param_groups"]]}


def _load_states(model, optimizer, model_state: dict, optim_state: dict, sharded: bool) -> None:
    """Put a checkpoint's model and optimizer state back (sharding it again under FSDP2)."""
    if sharded:
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_model_state_dict,
            set_optimizer_state_dict,
        )

        full = StateDictOptions(full_state_dict=True)
        set_model_state_dict(model, model_state, options=full)
        set_optimizer_state_dict(model, optimizer, optim_state, options=full)
        return
    unwrap(model).load_state_dict(model_state)
    index = {name: i for i, name in enumerate(_trainable_names(model))}
    optimizer.load_state_dict({
        "state": {index[name]: values for name, values in optim_state["state"].items()},
        "param_groups": [{**group, "params": [index[n] for n in group["params"]]}
                         for group in optim_state["param_groups"]]})


def _trainable_names(model) -> list[str]:
    return [name for name, p in unwrap(model).named_parameters() if p.requires_grad]


def _train_loader(data: LabeledData, settings: TrainSettings, cluster: Cluster):
    import torch
    from torch.utils.data import DataLoader, DistributedSampler

    per_rank = check_batch(settings.batch_size, cluster.world_size)
    if len(data) < settings.batch_size:
        raise InputError(f"the training data {data.origin} has {len(data)} samples, fewer than one batch "
                         f"of {settings.batch_size}", hint="pass a smaller --batch-size or more data")
    sampler = DistributedSampler(data.dataset, num_replicas=cluster.world_size, rank=cluster.rank, shuffle=True,
                                 seed=settings.seed, drop_last=True)
    generator = torch.Generator().manual_seed(settings.seed)
    return DataLoader(data.dataset, batch_size=per_rank, sampler=sampler, drop_last=True,
                      generator=generator), sampler


def _train_epoch(model, objective: Objective, optimizer, loader, cluster: Cluster, progress) -> tuple[float, ...]:
    loss_sum, correct, seen = 0.0, 0.0, 0.0
    for inputs, labels in loader:
        inputs, labels = inputs.to(cluster.device), labels.to(cluster.device)
        optimizer.zero_grad(set_to_none=True)
        loss, logits = objective(model, inputs, labels)
        loss.backward()
        optimizer.step()
        loss_sum += float(loss.detach()) * len(labels)
        correct += float((logits.detach().argmax(1) == labels).sum())
        seen += len(labels)
        if cluster.is_main:
            progress.batch_done(float(loss.detach()))
    return loss_sum, correct, seen
