"""The causal language-modelling loss as a token *sum*, so callers can normalise over a whole (global) batch.

Returning (sum, count) rather than a mean is what makes gradient accumulation and multi-process training exact:
the trainer divides by the number of label tokens of the whole optimizer step, whatever way it is split.

Two paths compute the same number:

* ``plain_causal_lm_loss``: logits for every position, then cross-entropy where labels != -100 — what a plain
  Hugging Face loop does.
* ``causal_lm_loss`` (the default): the output head runs only at positions whose *next* token is a label.
  SmolLM2's head is 576 x 49,152 — about a fifth of the model's arithmetic per token — and prompts, system
  prompts and padding never need it. The head and the cross-entropy run in chunks under activation
  checkpointing, so no (tokens x vocabulary) float32 tensor is kept for the backward pass: only the hidden
  states (tokens x 576) are, and each chunk's logits are recomputed when its gradient is needed.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

IGNORE_INDEX = -100
CE_CHUNK = 1024  # rows of logits alive at once: 1024 x 49,152 x 4 B = 200 MB at most


def model_inputs(batch: dict) -> dict:
    """The forward kwargs of a loader batch: input ids, plus the attention mask or (packed rows) position ids."""
    inputs = {"input_ids": batch["input_ids"]}
    if batch.get("attention_mask") is not None:
        inputs["attention_mask"] = batch["attention_mask"]
    elif batch.get("position_ids") is not None:
        # Packed rows: restarting position ids make transformers' sdpa mask block-diagonal per example.
        inputs["position_ids"] = batch["position_ids"]
        # ...but only without a KV cache: config.use_cache=True would make the model skip that detection and
        # let packed examples attend to each other (verified in tests/data/test_loader.py).
        inputs["use_cache"] = False
    return inputs


def split_rows(batch: dict, max_tokens: int) -> list[dict]:
    """Groups of whole rows (similar lengths together) with rows x width <= max_tokens, trimmed of trailing padding.

    Summing the (loss_sum, n) of the groups gives exactly the batch's, so the trainer runs forward+backward per
    group: peak activation memory is set by ``max_tokens`` rather than by the batch, at the same arithmetic.
    A row longer than ``max_tokens`` forms a group of its own.
    """
    ids = batch["input_ids"]
    lengths = batch.get("row_lengths")
    if lengths is None:
        mask = batch.get("attention_mask")
        lengths = mask.sum(dim=1) if mask is not None else torch.full((ids.shape[0],), ids.shape[1])
    lengths = [int(n) for n in lengths]
    groups: list[list[int]] = []
    width = 0
    # Longest rows first: rows of similar length share a group, so trimming leaves little padding to compute.
    for row in sorted(range(len(lengths)), key=lambda r: (-lengths[r], r)):
        n = lengths[row]
        if groups and max(width, n) * (len(groups[-1]) + 1) <= max_tokens:
            groups[-1].append(row)
            width = max(width, n)
        else:
            groups.append([row])
            width = n
    if len(groups) == 1 and max(lengths) == ids.shape[1] and groups[0] == list(range(len(lengths))):
        return [batch]
    return [_take_rows(batch, rows, max(lengths[r] for r in rows)) for rows in groups]


def _take_rows(batch: dict, rows: list[int], width: int) -> dict:
    index = torch.tensor(rows)
    out = {}
    for key, value in batch.items():
        if torch.is_tensor(value) and value.dim() == 2:
            out[key] = value[index, :width]
        elif torch.is_tensor(value) and value.dim() == 1:
            out[key] = value[index]
        else:
            out[key] = value
    return out


def plain_causal_lm_loss(model, batch: dict) -> tuple[torch.Tensor, int]:
    """(sum of next-token cross-entropy over label tokens != -100, number of those tokens), full logits."""
    logits = model(**model_inputs(batch)).logits
    labels = batch["labels"].to(logits.device)
    shift_logits = logits[:, :-1, :].float()
    shift_labels = labels[:, 1:]
    n_tokens = int((shift_labels != IGNORE_INDEX).sum())
    loss_sum = F.cross_entropy(shift_logits.reshape(-1, shift_logits.size(-1)), shift_labels.reshape(-1),
                               ignore_index=IGNORE_INDEX, reduction="sum")
    return loss_sum, n_tokens


def causal_lm_loss(model, batch: dict) -> tuple[torch.Tensor, int]:
    """The same (sum, count) as ``plain_causal_lm_loss``, computing the output head only where it is needed."""
    core = getattr(model, "module", model)  # DistributedDataParallel wraps the real model
    head = core.get_output_embeddings() if hasattr(core, "get_output_embeddings") else None
    if not isinstance(head, nn.Linear):
        return plain_causal_lm_loss(model, batch)
    labels = batch["labels"]
    targets = labels[:, 1:]
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = targets != IGNORE_INDEX  # position t predicts token t+1
    with _head_bypassed(core, head):
        hidden = model(**model_inputs(batch), logits_to_keep=keep.to(labels.device)).logits  # (N, C)
    wanted = targets[targets != IGNORE_INDEX].to(hidden.device)  # (N,), same row-major order as hidden
    return chunked_cross_entropy(hidden, head.weight, head.bias, wanted), int(wanted.numel())


def chunked_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, bias, targets: torch.Tensor,
                          chunk: int = CE_CHUNK) -> torch.Tensor:
    """sum_i CE(hidden_i @ weight.T + bias, targets_i), never holding more than ``chunk`` rows of logits."""
    if hidden.shape[0] == 0:
        return hidden.sum() * 0.0  # keeps the graph (and DDP's hooks) alive for an empty micro-batch
    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, hidden.shape[0], chunk):
        h, t = hidden[start:start + chunk], targets[start:start + chunk]
        if torch.is_grad_enabled() and (h.requires_grad or weight.requires_grad):
            total = total + checkpoint(_head_ce, h, weight, bias, t, use_reentrant=False)
        else:
            total = total + _head_ce(h, weight, bias, t)
    return total


def _head_ce(h: torch.Tensor, weight: torch.Tensor, bias, t: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(F.linear(h, weight, bias).float(), t, reduction="sum")


@contextlib.contextmanager
def _head_bypassed(core, head: nn.Module):
    """Swap the output head for an identity for one forward, so the model returns hidden states as 'logits'."""
    core.set_output_embeddings(nn.Identity())
    try:
        yield
    finally:
        core.set_output_embeddings(head)
