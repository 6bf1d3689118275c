"""Where models run and in which precision: one choice of device (cuda, mps, cpu) and one dtype policy.

``choose_device`` is what training, evaluation, chat and serving place their model on: ``$AF_DEVICE`` (auto, cuda,
mps, cpu) or "auto" = the first CUDA GPU, then Apple's MPS, then the CPU. On CUDA, training runs the forward under
autocast: bf16 where the GPU supports it, otherwise fp16 with a gradient scaler (fp16's narrow range underflows
small gradients). The weights stay float32, so the optimizer and the checkpoints are the same as on the CPU.

Training places its model with ``choose_device`` (train.device, default auto); chat, evaluation and serving load
their model through ``core.models.load_model``, which places it on ``$AF_DEVICE`` when that is set (our decoder and
the evaluation feed their inputs to the model's device). Models load with sdpa attention where the family supports
it, so CUDA runs sdpa's fused (flash / memory-efficient) kernels.

``CPU_TRICKS`` names what the CPU path does that does not pay on a GPU (see ``cpu_tricks``): on CUDA the padded
forward already runs sdpa's fused kernels, so unpadding rows one example at a time costs launches for little gain.
"""
from __future__ import annotations

import contextlib
import os
from typing import Optional

import torch

from core.errors import UserError

DEVICE_ENV = "AF_DEVICE"
DEVICE_CHOICES = ("auto", "cuda", "mps", "cpu")
# CPU-only speed tricks, by name: "unpadded" (per-example attention over packed rows, core/training/varlen.py).
CPU_TRICKS = ("unpadded",)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def choose_device(preference: Optional[str] = None, index: int = 0) -> torch.device:
    """The device to run on: ``preference`` (or ``$AF_DEVICE``, default auto) checked against what is present."""
    chosen = preference if preference not in (None, "auto") else os.environ.get(DEVICE_ENV)
    pref = (chosen or "auto").lower()
    if pref not in DEVICE_CHOICES:
        raise UserError(f"Device {pref!r} is not one of {', '.join(DEVICE_CHOICES)}; set {DEVICE_ENV} or "
                        "train.device to one of them (auto picks a GPU when there is one).")
    if pref == "cuda" and not torch.cuda.is_available():
        raise UserError("The device is 'cuda' but no CUDA GPU is visible; use auto or cpu.")
    if pref == "mps" and not _mps_available():
        raise UserError("The device is 'mps' but Apple's Metal backend is not available; use auto or cpu.")
    if pref == "cuda" or (pref == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", index % max(torch.cuda.device_count(), 1))
    if pref == "mps" or (pref == "auto" and _mps_available()):
        return torch.device("mps")
    return torch.device("cpu")


def autocast_dtype(device: torch.device) -> Optional[torch.dtype]:
    """The training autocast dtype on ``device``: bf16 on GPUs that support it, fp16 on older ones, None on CPU."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device, dtype: Optional[torch.dtype]):
    """A context that runs the forward in ``dtype`` on ``device`` (a no-op when ``dtype`` is None)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device, dtype: Optional[torch.dtype]):
    """A gradient scaler for fp16 training on CUDA, else None (bf16 and float32 need none)."""
    if device.type == "cuda" and dtype == torch.float16:
        return torch.amp.GradScaler("cuda")
    return None


def cpu_tricks(device: torch.device) -> tuple[str, ...]:
    """The CPU-only tricks that run on ``device`` (all of them on CPU, none on CUDA)."""
    return CPU_TRICKS if device.type == "cpu" else ()


def describe(device: torch.device) -> str:
    """One line for logs: the device, its name and the training precision."""
    if device.type != "cuda":
        return f"{device.type} (float32)"
    dtype = autocast_dtype(device)
    name = torch.cuda.get_device_name(device)
    return f"{device} {name} ({str(dtype).removeprefix('torch.')} autocast)"


ACTIVATION_FLOATS = 34  # stored activations per token, layer and hidden unit (Korthikanti et al. 2022, fused attn)


def gpu_memory_estimate(arch, total_params: int, trainable_params: int, batch_tokens: int,
                        dtype: Optional[torch.dtype], head_rows: int = 1024) -> dict:
    """Peak training bytes on a GPU: float32 weights, gradients + AdamW moments, activations, one logits chunk.

    ``arch`` is :class:`core.strategy.arch.Arch`; activations are kept in the autocast dtype (2 bytes) or float32.
    """
    act_bytes = 2 if dtype in (torch.bfloat16, torch.float16) else 4
    parts = {"weights": 4 * total_params,
             "optimizer": 4 * 3 * trainable_params,  # gradient, exp_avg, exp_avg_sq
             "activations": act_bytes * ACTIVATION_FLOATS * batch_tokens * arch.layers * arch.hidden,
             "logits": 4 * 2 * min(head_rows, batch_tokens) * arch.vocab}  # a chunk of logits and its gradient
    parts["total"] = sum(parts.values())
    return parts
