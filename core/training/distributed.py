"""torchrun / DistributedDataParallel support: gloo on CPU, NCCL on GPU, rank-0-only writes, data sharded by rank.

Under ``torchrun --nproc_per_node N -m core train --config RUN.yaml`` each process sees RANK / WORLD_SIZE / LOCAL_RANK
in its environment. The global batch is ``batch_size x world_size x grad_accum``: optimizer step ``s`` consumes the
loader's batches ``s*W*A .. (s+1)*W*A - 1`` and rank ``r`` takes micro-batch ``j`` = batch ``s*W*A + j*W + r``, so one
process with ``grad_accum = W*A`` sees exactly the same examples per step as W processes with ``grad_accum = A``.
"""
from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass
class DistContext:
    """Where this process stands: rank, world size, device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """True on the process that writes files (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when more than one process takes part."""
        return self.world_size > 1


def pick_device(preference: str = "auto", local_rank: int = 0) -> torch.device:
    """The device this process trains on (core/device.py's choice; cuda:<local_rank> under torchrun)."""
    from core.device import choose_device

    return choose_device(preference, local_rank)


def init_distributed(device_preference: str = "auto") -> DistContext:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); a single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_preference, local_rank)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        # A generous timeout: rank 0 may wait for the workspace lock while the others sit in a barrier.
        dist.init_process_group(backend=backend, timeout=_dt.timedelta(hours=12))
    return DistContext(rank=rank, world_size=world, local_rank=local_rank, device=device)


def wrap_model(model: torch.nn.Module, ctx: DistContext) -> torch.nn.Module:
    """DDP-wrap the model when distributed (gradients of trainable parameters are averaged across ranks)."""
    if not ctx.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DDP(model, device_ids=ids, output_device=ids[0] if ids else None, broadcast_buffers=False)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DDP wrapper (or the model itself)."""
    return getattr(model, "module", model)


def all_reduce_sum(values: list[float], ctx: DistContext) -> list[float]:
    """Sum a few numbers over all ranks (float64, so token counts and loss sums stay exact)."""
    if not ctx.distributed:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def any_rank(flag: bool, ctx: DistContext) -> bool:
    """True when ``flag`` is true on any rank (so e.g. a SIGTERM seen by one rank stops all at the same step)."""
    if not ctx.distributed:
        return flag
    return all_reduce_sum([1.0 if flag else 0.0], ctx)[0] > 0


def broadcast_object(obj: Any, ctx: DistContext) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not ctx.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj: Any, ctx: DistContext) -> list[Any]:
    """Every rank's ``obj`` (list indexed by rank), on every rank."""
    if not ctx.distributed:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(ctx: DistContext) -> None:
    """Wait for all ranks."""
    if ctx.distributed:
        dist.barrier()


def cleanup(ctx: DistContext) -> None:
    """Leave the process group."""
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def micro_seed(seed: int, step: int, micro_index: int) -> int:
    """A distinct, reproducible RNG seed per (run seed, optimizer step, global micro-batch): dropout then depends
    on which micro-batch runs, not on which process or accumulation slot runs it."""
    return ((seed * 1_000_003 + step) * 10_007 + micro_index) % (2**63 - 1)
