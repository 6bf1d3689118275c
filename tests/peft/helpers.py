"""Shared helpers for the PEFT tests: configs per method, batches, and a training step."""
from __future__ import annotations

import torch

from core.models import tiny_model
from core.peft import AdapterConfig, FreezeConfig, FullConfig, LoRAConfig, PrefixConfig

KINDS = ("tiny-llama", "tiny-gpt2")
# Targets per family: Llama-style names and GPT-2's Conv1D names.
TARGETS = {"tiny-llama": ("q_proj", "v_proj"), "tiny-gpt2": ("c_attn", "c_fc")}


def method_configs(kind: str) -> dict:
    """One config per method variant, sized for the tiny models."""
    targets = TARGETS[kind]
    return {
        "lora": LoRAConfig(r=4, alpha=8, dropout=0.1, target_modules=targets),
        "rslora": LoRAConfig(r=4, alpha=8, dropout=0.0, target_modules="all-linear", use_rslora=True),
        "dora": LoRAConfig(r=4, alpha=8, dropout=0.1, target_modules=targets, use_dora=True),
        "adapter": AdapterConfig(bottleneck=8, placement=("attn", "mlp")),
        "adapter-mlp": AdapterConfig(bottleneck=8, placement=("mlp",), nonlinearity="relu", dropout=0.1),
        "prefix": PrefixConfig(num_virtual_tokens=5, projection_dim=16),
        "prefix-direct": PrefixConfig(num_virtual_tokens=3, projection_dim=0),
        "full": FullConfig(),
        "freeze": FreezeConfig(trainable_layers=1),
    }


def cases(names=None):
    """(kind, variant) pairs for parametrize."""
    return [(k, v) for k in KINDS for v in method_configs(k) if names is None or v in names]


def fresh(kind: str):
    """A new tiny base model (same weights every time)."""
    return tiny_model(kind)


def right_padded_batch(tok, texts=("hello world, how are you?", "hi", "a third, medium one")):
    """Right-padded training batch with labels -100 on padding (as the trainer builds it)."""
    rows = [tok(t)["input_ids"] for t in texts]
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), tok.pad_token_id)
    mask = torch.zeros_like(ids)
    for i, row in enumerate(rows):
        ids[i, :len(row)] = torch.tensor(row)
        mask[i, :len(row)] = 1
    labels = ids.masked_fill(mask == 0, -100)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def train_steps(model, batch, steps: int = 2, lr: float = 0.1) -> None:
    """A few Adam steps on the trainable parameters with a large learning rate."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        model(**batch).loss.backward()
        opt.step()
    model.eval()


def logits(model, batch) -> torch.Tensor:
    """Eval-mode logits without labels."""
    with torch.no_grad():
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
