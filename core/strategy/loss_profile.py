"""How the trainer's loss spends memory and time on the output head: logits for every token or labels only."""
from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from core.models import tiny_model
from core.training import loss as loss_module


@dataclass(frozen=True)
class LossProfile:
    """How the trainer's loss spends memory and time on the output head."""

    mode: str                    # "all": logits for every position; "labels": only where the next token is a label
    chunk: int | None = None  # rows of logits alive at once (chunked cross-entropy), None = all at once
    recompute: bool = False      # chunks are recomputed in backward (activation checkpointing)


@functools.lru_cache(maxsize=1)
def loss_profile() -> LossProfile:
    """Found by running ``core.training.loss.causal_lm_loss`` once on the tiny model and watching its output head,
    so the estimate follows the trainer whichever way its loss is written."""
    model, _ = tiny_model("tiny-llama")
    seen = []
    head = model.get_output_embeddings()
    handle = head.register_forward_hook(lambda m, i, o: seen.append(o.shape[:-1].numel()))
    ids = torch.randint(0, 200, (2, 32), generator=torch.Generator().manual_seed(0))  # leave the global RNG alone
    labels = torch.full_like(ids, -100)
    labels[:, -4:] = ids[:, -4:]
    try:
        with torch.no_grad():
            loss_module.causal_lm_loss(model, {"input_ids": ids, "labels": labels,
                                               "attention_mask": torch.ones_like(ids)})
    except Exception:  # noqa: BLE001 - an unexpected loss signature: assume the expensive case
        return LossProfile("all")
    finally:
        handle.remove()
    # No call of the head module with every row means the loss projects selected hidden states itself.
    if seen and seen[0] >= ids.numel() - ids.shape[0]:
        return LossProfile("all")
    chunk = getattr(loss_module, "CE_CHUNK", None)
    return LossProfile("labels", chunk=chunk, recompute=bool(getattr(loss_module, "HEAD_RECOMPUTE", False)))


def logit_rows(tokens: int, label_tokens: int | None) -> int:
    """Rows of the output head per micro-batch: every token, or the labelled ones (half when unknown)."""
    if loss_profile().mode == "all":
        return tokens
    return min(tokens, label_tokens) if label_tokens is not None else tokens // 2

