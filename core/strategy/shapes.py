"""A run config with its defaults, and the real batch shapes of its training data as the trainer will see them."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from core.defaults import DEFAULT_MODEL, METHODS, TRAIN_DEFAULTS
from core.errors import UserError


def normalize_config(config: Any) -> dict:
    """A run config as a plain dict with the training defaults filled in."""
    from core.training.config import (
        TrainingConfig,  # the config module imports core.peft (torch)
    )

    if hasattr(config, "to_dict"):
        return _with_defaults(config.to_dict())
    if isinstance(config, (str, Path)):
        return _with_defaults(TrainingConfig.from_file(config).to_dict())
    if not isinstance(config, dict):
        raise UserError(f"A run config must be a mapping or a file, got {type(config).__name__}.")
    return _with_defaults(config)


def _with_defaults(d: dict) -> dict:
    out = dict(d)
    out.setdefault("model", DEFAULT_MODEL)
    out.setdefault("method", "lora")
    if out["method"] not in METHODS:
        raise UserError(f"method must be one of {', '.join(METHODS)}, got {out['method']!r}.")
    out["train"] = {**TRAIN_DEFAULTS, **(out.get("train") or {})}
    return out


def dataset_shapes(cfg: dict, model: str, sample: int = 4000) -> dict:
    """Real batch shapes of the run's training data: [(rows, width, label tokens)] per batch of epoch 0.

    Uses the trainer's own loader (same chat template, truncation, packing). Datasets larger than ``sample``
    conversations are sampled evenly and the epoch is scaled up (``scale``).
    """
    from core.data import load_split
    from core.data.loader import SmartDataLoader
    from core.models import load_tokenizer

    tc = cfg["train"]
    convs = load_split(cfg["data"], "train")
    if tc.get("max_train_examples"):
        convs = convs[: tc["max_train_examples"]]
    n = len(convs)
    if not n:
        raise UserError(f"The data {cfg['data']!r} has no training conversations; prepare a dataset first.")
    scale = 1.0
    if n > sample:
        convs, scale = [convs[int(i * n / sample)] for i in range(sample)], n / sample
    loader = SmartDataLoader(load_tokenizer(model), system_prompt=cfg.get("system_prompt"),
                             max_seq_len=tc["max_seq_len"])
    examples, stats = loader.encode_all(convs)
    packing = bool(tc["packing"]) and cfg["method"] != "prefix"
    shapes = [micro_batches(batch, tc.get("micro_batch_tokens"), packing)
              for batch in loader.batches(examples, tc["batch_size"], packing=packing, shuffle=True, seed=42, epoch=0)]
    val_batches = []
    try:
        val = load_split(cfg["data"], "val")[: tc.get("max_eval_examples") or None]
    except UserError:
        val = []
    if val:
        val_examples, _ = loader.encode_all(val)
        bs = tc.get("eval_batch_size") or tc["batch_size"]
        val_batches = [tuple(b["input_ids"].shape) for b in loader.batches(val_examples, bs, packing=False,
                                                                         shuffle=False)]
    return {"conversations": n, "examples": int(len(examples) * scale), "val_batches": val_batches,
            "tokens": int(stats.get("tokens", 0) * scale), "label_tokens": int(stats.get("label_tokens", 0) * scale),
            "batches_per_epoch": math.ceil(len(shapes) * scale), "packing": packing, "scale": scale,
            "batches": shapes}


def micro_batches(batch: dict, max_tokens: int | None, packing: bool = False) -> list[tuple[int, int, int, bool]]:
    """(rows, tokens per row, label tokens, masked) of each forward pass the trainer makes for one loader batch: the
    row groups of ``split_rows``, and, where the rows share a prompt prefix, that prefix once plus the rows after it.

    ``masked``: the forward carries an attention mask — packed rows (a block-diagonal mask) or padded rows run
    padded. Rows without padding, and padded rows run unpadded, go without (plain causal attention)."""
    from core.training.loss import (
        IGNORE_INDEX,
        shared_prefix_length,
        split_rows,
        unpadded_pays,
    )

    out = []
    for group in split_rows(batch, max_tokens or batch["input_ids"].numel()):
        rows, width = group["input_ids"].shape
        labels = group["labels"]
        keep = torch.zeros_like(labels, dtype=torch.bool)
        keep[:, :-1] = labels[:, 1:] != IGNORE_INDEX
        shared = shared_prefix_length(group, keep)
        if shared:
            out.append((1, shared, 0, False))
        mask = group.get("attention_mask")
        masked = packing or (mask is not None and not bool(mask.all()))
        if unpadded_pays(mask):  # unpadded forward: real tokens only, at their mean length, no mask tensor
            width, masked = max(1, round(int(mask.sum()) / rows)), False
        out.append((int(rows), int(width - shared), int(keep.sum()), masked))
    return out

