"""The causal language-modelling loss as a token *sum*, so callers can normalise over a whole (global) batch.

Returning (sum, count) rather than a mean is what makes gradient accumulation and multi-process training exact:
the trainer divides by the number of label tokens of the whole optimizer step, whatever way it is split.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def model_inputs(batch: dict) -> dict:
    """The forward kwargs of a loader batch: input ids, plus the attention mask or (packed rows) position ids."""
    inputs = {"input_ids": batch["input_ids"]}
    if batch.get("attention_mask") is not None:
        inputs["attention_mask"] = batch["attention_mask"]
    elif batch.get("position_ids") is not None:
        # Packed rows: restarting position ids make transformers' sdpa mask block-diagonal per example.
        inputs["position_ids"] = batch["position_ids"]
    return inputs


def causal_lm_loss(model, batch: dict) -> tuple[torch.Tensor, int]:
    """(sum of next-token cross-entropy over label tokens != -100, number of those tokens)."""
    logits = model(**model_inputs(batch)).logits
    labels = batch["labels"].to(logits.device)
    shift_logits = logits[:, :-1, :].float()
    shift_labels = labels[:, 1:]
    n_tokens = int((shift_labels != IGNORE_INDEX).sum())
    loss_sum = F.cross_entropy(shift_logits.reshape(-1, shift_logits.size(-1)), shift_labels.reshape(-1),
                               ignore_index=IGNORE_INDEX, reduction="sum")
    return loss_sum, n_tokens
