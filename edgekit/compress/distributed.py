"""The torch.distributed layer: one process by default; under ``torchrun``, data parallel with DDP or sharded.

- Launch: ``torchrun --nproc-per-node N -m edgekit.cli compress …`` (one machine) or, across machines,
  ``torchrun --nnodes M --nproc-per-node N --rdzv-backend c10d --rdzv-endpoint HOST:29400 --rdzv-id JOB …`` on
  every node. torchrun sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``; without them everything runs in one process.
- Backend: gloo on CPU, NCCL on CUDA GPUs (one GPU per process, ``cuda:LOCAL_RANK``); NCCL without a GPU is refused.
- ``replicate`` (default): DDP, gradients averaged every step, so N processes with a per-process batch of B/N
  follow the same path as one process with batch B. BatchNorm becomes SyncBatchNorm where torch supports it
  (GPUs); on CPU each process normalizes its own slice, and rank 0's running statistics are kept (as DDP does).
- ``full``: FSDP2 (``fully_shard``) over all processes: parameters, gradients and optimizer state sharded.
  ``hybrid``: FSDP2 on a 2-D mesh (replicate across nodes, shard within a node: HSDP). Both run on CPU with gloo
  (that is what the tests use) and on GPUs with NCCL.
- Rank 0 alone writes files; at the end every rank's weights are compared with rank 0's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import InputError

Sharding = Literal["replicate", "full", "hybrid"]
SHARDINGS = ("replicate", "full", "hybrid")
BACKENDS = {"cpu": "gloo", "cuda": "nccl"}


@dataclass
class Cluster:
    """Where this process stands: world size, rank, device and backend (world size 1: no process group)."""

    world_size: int
    rank: int
    local_rank: int
    local_world_size: int
    device: Any
    backend: str | None
    started_group: bool = False

    @classmethod
    def alone(cls) -> Cluster:
        """This process on its own, on the CPU: for work rank 0 does after the others are done."""
        import torch

        return cls(1, 0, 0, 1, torch.device("cpu"), None)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def describe(self) -> dict:
        return {"world_size": self.world_size, "backend": self.backend, "device": str(self.device)}

    def close(self) -> None:
        if self.started_group:
            import torch.distributed as dist

            dist.destroy_process_group()
            self.started_group = False


def launch_environment(env: dict[str, str] | None = None) -> tuple[int, int, int, int]:
    """(world size, rank, local rank, local world size) from torchrun's variables; (1, 0, 0, 1) without them."""
    env = os.environ if env is None else env
    try:
        world = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        local_rank = int(env.get("LOCAL_RANK", "0"))
        local_world = int(env.get("LOCAL_WORLD_SIZE", str(world)))
    except ValueError as exc:
        raise InputError(f"malformed torchrun environment: {exc}", hint="launch with torchrun, or without it") from exc
    return world, rank, local_rank, local_world


def choose_device(requested: str, local_rank: int, cuda_available: bool) -> str:
    """``auto``: this process's GPU when there is one, else the CPU. ``cuda`` without a GPU is refused."""
    if requested not in ("auto", "cpu", "cuda"):
        raise InputError(f"unknown device '{requested}'", hint="use --device auto, cpu or cuda")
    if requested == "cuda" and not cuda_available:
        raise InputError("--device cuda asked for, but torch sees no CUDA GPU", hint="use --device cpu (or auto)")
    if requested == "cpu" or not cuda_available:
        return "cpu"
    return f"cuda:{local_rank}"


def choose_backend(device: str, requested: str = "auto") -> str:
    """gloo for CPU tensors, NCCL for CUDA tensors; a backend that cannot carry the device's tensors is refused."""
    kind = device.split(":")[0]
    if requested == "auto":
        return BACKENDS[kind]
    if requested not in BACKENDS.values():
        raise InputError(f"unknown backend '{requested}'", hint="use --backend auto, gloo or nccl")
    if requested == "nccl" and kind != "cuda":
        raise InputError("the NCCL backend needs CUDA GPUs, and this run uses the CPU",
                         hint="use --backend gloo (or auto), or run on GPUs with --device cuda")
    return requested


def check_batch(global_batch: int, world_size: int) -> int:
    """The per-process batch; the global batch must split evenly so every step sees the same samples."""
    if global_batch < 1:
        raise InputError(f"batch size must be positive, got {global_batch}", hint="pass --batch-size 64")
    if global_batch % world_size:
        fitting = global_batch - global_batch % world_size or world_size
        raise InputError(f"the batch size {global_batch} does not divide among {world_size} processes",
                         hint=f"use a multiple of {world_size}, e.g. --batch-size {fitting}")
    return global_batch // world_size


def start(device: str = "auto", backend: str = "auto", sharding: Sharding = "replicate") -> Cluster:
    """Join torchrun's process group (or stay alone) and pick this process's device."""
    import torch

    if sharding not in SHARDINGS:
        raise InputError(f"unknown sharding '{sharding}'", hint=f"use one of: {', '.join(SHARDINGS)}")
    world, rank, local_rank, local_world = launch_environment()
    device_name = choose_device(device, local_rank, torch.cuda.is_available())
    chosen = choose_backend(device_name, backend) if world > 1 or backend != "auto" else None
    if sharding == "hybrid" and world > 1 and world % local_world:
        raise InputError(f"hybrid sharding needs the same number of processes on every node ({world} processes, "
                         f"{local_world} on this node)", hint="launch the same --nproc-per-node on every node")
    cluster = Cluster(world, rank, local_rank, local_world, torch.device(device_name), chosen)
    if device_name.startswith("cuda"):
        torch.cuda.set_device(cluster.device)
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group(chosen, device_id=cluster.device if device_name.startswith("cuda") else None)
            cluster.started_group = True
    return cluster


def prepare(model, cluster: Cluster, sharding: Sharding, trainable: bool = True):
    """Move ``model`` to the device and wrap it for the run: DDP (replicate) or FSDP2 (full / hybrid)."""
    import torch

    model = model.to(cluster.device)
    if not cluster.distributed:
        return model
    if sharding == "replicate":
        if not trainable:
            return model
        if cluster.device.type == "cuda":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        from torch.nn.parallel import DistributedDataParallel

        ids = [cluster.device.index] if cluster.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    if sharding == "hybrid":
        shape = (cluster.world_size // cluster.local_world_size, cluster.local_world_size)
        mesh = init_device_mesh(cluster.device.type, shape, mesh_dim_names=("replicate", "shard"))
    else:
        mesh = init_device_mesh(cluster.device.type, (cluster.world_size,), mesh_dim_names=("shard",))
    for child in model.children():  # one FSDP unit per top-level block, then the root for what is left
        if next(child.parameters(), None) is not None:
            fully_shard(child, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def unwrap(model):
    """The user's module inside a DDP wrapper (FSDP2 shards in place: the module is its own)."""
    return getattr(model, "module", model)


def full_state(model, cluster: Cluster, sharded: bool) -> dict:
    """Every tensor of the model, whole, on the CPU (gathered from the shards under FSDP2)."""
    if sharded and cluster.distributed:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True))
    return {k: v.detach() for k, v in unwrap(model).state_dict().items()}


def sync_buffers(model, cluster: Cluster) -> None:
    """Rank 0's buffers (BatchNorm statistics, QAT observers) on every process, as DDP does before each forward;
    FSDP2 leaves buffers alone, so without this they would drift apart."""
    if not cluster.distributed:
        return
    import torch.distributed as dist

    for buffer in unwrap(model).buffers():
        dist.broadcast(buffer, src=0)


def max_divergence(state: dict, cluster: Cluster) -> float:
    """The largest absolute difference between this process's weights and rank 0's, the same on every rank."""
    if not cluster.distributed:
        return 0.0
    import torch
    import torch.distributed as dist

    worst = torch.zeros(1, dtype=torch.float64, device=cluster.device)
    for key in sorted(state):
        tensor = state[key].to(cluster.device)
        reference = tensor.clone()
        dist.broadcast(reference, src=0)
        if tensor.numel():
            worst = torch.maximum(worst, (tensor.double() - reference.double()).abs().max().reshape(1))
    dist.all_reduce(worst, op=dist.ReduceOp.MAX)
    return float(worst.item())


def all_sum(values: list[float], cluster: Cluster) -> list[float]:
    """Element-wise sum over processes (counts and loss sums of a sharded evaluation)."""
    if not cluster.distributed:
        return values
    import torch
    import torch.distributed as dist

    tensor = torch.tensor(values, dtype=torch.float64, device=cluster.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def broadcast_flag(flag: bool, cluster: Cluster) -> bool:
    """Rank 0's ``flag`` on every process (to stop together when rank 0 fails to write)."""
    return all_sum([1.0 if flag and cluster.is_main else 0.0], cluster)[0] > 0 if cluster.distributed else flag
