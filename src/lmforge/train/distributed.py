"""torchrun process groups, DDP / FSDP2 wrapping, and the few collectives the loop needs.

One process and `torchrun --nproc_per_node N` run the same code: with
WORLD_SIZE=1 every helper here is a no-op. Backends: NCCL on CUDA, gloo on CPU.
"""

from __future__ import annotations

import contextlib
import datetime
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from ..common import ConfigError, dist_info, pick_device


@dataclass
class DistContext:
    """Where this process sits: rank, world size, device, and how the model is parallelised."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: str = "cpu"
    parallel: str = "none"  # none | ddp | fsdp

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "auto", parallel: str = "auto") -> DistContext:
    """Join torchrun's process group (if any) and resolve the device and parallel mode."""
    rank, local_rank, world = dist_info()
    dev = pick_device(device)
    if world > 1 and dev.startswith("cuda"):
        dev = f"cuda:{local_rank}"
        torch.cuda.set_device(dev)
    if parallel == "auto":
        parallel = "ddp" if world > 1 else "none"
    if parallel == "none" and world > 1:
        raise ConfigError("parallel", f"none, but torchrun started {world} processes; use ddp")
    if parallel == "fsdp" and not (dev.startswith("cuda") or dev == "cpu"):
        raise ConfigError("parallel", f"fsdp runs on CUDA (NCCL) or CPU (gloo), not {dev}")
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if dev.startswith("cuda") else "gloo"
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30))
    return DistContext(rank, local_rank, world, dev, parallel if world > 1 else "none")


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def _block_list(model: nn.Module) -> nn.ModuleList | None:
    """The model's stack of transformer/RNN blocks: its largest ModuleList."""
    best = None
    for m in model.modules():
        if isinstance(m, nn.ModuleList) and (best is None or len(m) > len(best)):
            best = m
    return best


def wrap_model(model: nn.Module, ctx: DistContext) -> nn.Module:
    """DDP or FSDP2 around `model` (already on ctx.device); unchanged on one process."""
    if ctx.parallel == "ddp":
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [ctx.local_rank] if ctx.device.startswith("cuda") else None
        return DDP(model, device_ids=ids)
    if ctx.parallel == "fsdp":
        from torch.distributed.fsdp import fully_shard

        # Shard each block separately so only one block's full weights exist at a time.
        blocks = _block_list(model)
        if blocks is not None:
            for block in blocks:
                fully_shard(block)
        fully_shard(model)
        return model
    return model


def unwrap(model: nn.Module) -> nn.Module:
    """The user's module inside DDP and torch.compile wrappers (FSDP2 shards in place)."""
    while True:
        if hasattr(model, "_orig_mod"):  # torch.compile
            model = model._orig_mod
        elif isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


def grad_sync(model: nn.Module, ctx: DistContext, sync: bool):
    """Context for one micro-step: skip the gradient all-reduce except on the last one."""
    if ctx.parallel == "ddp" and not sync:
        ddp = model._orig_mod if hasattr(model, "_orig_mod") else model
        return ddp.no_sync()
    if ctx.parallel == "fsdp":
        unwrap(model).set_requires_gradient_sync(sync)
    return contextlib.nullcontext()


def all_reduce_mean(t: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Mean over processes (in place) of a tensor; a no-op on one process."""
    if ctx.distributed:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t /= ctx.world_size
    return t


def all_reduce_sum(t: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    if ctx.distributed:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def broadcast_bool(flag: bool, ctx: DistContext) -> bool:
    """Rank 0's decision, on every rank (e.g. 'the time budget is spent')."""
    if not ctx.distributed:
        return flag
    t = torch.tensor([1 if flag else 0], device=ctx.device)
    dist.broadcast(t, src=0)
    return bool(t.item())


def gather_objects(obj, ctx: DistContext) -> list:
    """Every rank's `obj`, in rank order, on every rank."""
    if not ctx.distributed:
        return [obj]
    out = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def full_state_dicts(model: nn.Module, optimizer: torch.optim.Optimizer, ctx: DistContext):
    """(model_state, optimizer_state) as full CPU tensors, for checkpoints (all ranks call)."""
    if ctx.parallel == "fsdp":
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_model_state_dict,
            get_optimizer_state_dict,
        )

        opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
        inner = unwrap(model)
        return (
            get_model_state_dict(inner, options=opts),
            get_optimizer_state_dict(inner, optimizer, options=opts),
        )
    return unwrap(model).state_dict(), optimizer.state_dict()


def load_optimizer_state(
    model: nn.Module, optimizer: torch.optim.Optimizer, state: dict, ctx: DistContext
) -> None:
    """Load a full optimizer state dict (as `full_state_dicts` wrote it)."""
    if ctx.parallel == "fsdp":
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_optimizer_state_dict,
        )

        opts = StateDictOptions(full_state_dict=True, broadcast_from_rank0=False)
        set_optimizer_state_dict(unwrap(model), optimizer, state, options=opts)
    else:
        optimizer.load_state_dict(state)
