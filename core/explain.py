"""The Learn page's interactive explainers: LoRA parameter counts by rank, the merge demo, each method's size.

Small, exact demonstrations (meta-device parameter counts, a tiny model) that teach what the method lab measures;
the lab itself (plan, launch, results) is :mod:`core.lab`.
"""
from __future__ import annotations

from typing import Sequence

from core.defaults import METHODS
from core.errors import UserError
from core.lab import method_params

LORA_TARGETS = {"qv": ["q_proj", "v_proj"], "attn": ["q_proj", "k_proj", "v_proj", "o_proj"], "all": "all-linear"}


def lora_parameter_count(model: str, r: int, targets: str = "qv") -> dict:
    """Exact LoRA trainable parameters at rank ``r`` on ``model`` (meta-device build), with the share of the model."""
    from core.strategy import ResourceEstimator

    if targets not in LORA_TARGETS:
        raise UserError(f"Unknown LoRA target set {targets!r}; choose one of {', '.join(LORA_TARGETS)}.")
    params = {"r": int(r), "alpha": 2 * int(r), "dropout": 0.0, "target_modules": LORA_TARGETS[targets]}
    count = ResourceEstimator(model).parameters("lora", params)
    return {"r": int(r), "trainable": count.trainable, "total": count.total, "base": count.base,
            "share": count.trainable / max(1, count.total), "per_rank": count.trainable // max(1, int(r))}


def merge_demo(r: int = 4, alpha: int = 8, seed: int = 0) -> dict:
    """LoRA on a tiny model with non-zero B, merged: the largest logit difference between merged and unmerged
    (floating-point noise) and, for scale, between the LoRA model and its base."""
    import torch

    from core.models import tiny_model
    from core.peft import LoRAConfig, apply_peft, merge_lora, trainable_parameters

    torch.manual_seed(seed)
    model, _ = tiny_model("tiny-llama", seed=seed)
    model.eval()
    ids = torch.randint(3, model.config.vocab_size, (2, 12), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        base = model(input_ids=ids).logits
        apply_peft(model, LoRAConfig(r=r, alpha=alpha, dropout=0.0, target_modules=("q_proj", "v_proj")))
        for name, p in model.named_parameters():
            if "lora_B" in name:  # B starts at zero (LoRA is a no-op at first); a trained B is not
                p.normal_(0.0, 0.5)
        trainable, total = trainable_parameters(model)
        unmerged = model(input_ids=ids).logits
        merged_model = merge_lora(model)
        merged = merged_model(input_ids=ids).logits
    return {"max_abs_diff": float((merged - unmerged).abs().max()),
            "lora_effect": float((unmerged - base).abs().max()), "trainable": trainable, "total": total,
            "tokens": int(ids.numel()), "params_after_merge": sum(p.numel() for p in merged_model.parameters())}


def method_sizes(model: str, methods: Sequence[str] = METHODS) -> list[dict]:
    """Exact trainable parameters of each method (the lab's settings) on ``model``, counted on the meta device."""
    from core.strategy import ResourceEstimator

    est = ResourceEstimator(model)
    out = []
    for method in methods:
        count = est.parameters(method, method_params(method))
        out.append({"method": method, "trainable": count.trainable, "total": count.total,
                    "share": count.trainable / max(1, count.total)})
    return out
