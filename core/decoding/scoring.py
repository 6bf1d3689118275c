"""Label scoring from one prompt cache: log-likelihood of each of K label strings as the continuation of a prompt.

The prompt runs once (1 row); its cache is copied to K rows and the labels, right-padded, run in one batch against
it (mask: the prompt, then each label's own tokens; positions continue after the prompt). The first label token is
scored by the prompt's last logits, token j by the label's position j-1.
"""
from __future__ import annotations

from typing import Sequence

import torch

from core.decoding.kvcache import Runner, fork


def label_logprobs(model, prompt: Sequence[int], labels: Sequence[Sequence[int]],
                   runner: Runner | None = None, chunk: int = 0) -> torch.Tensor:
    """``(K,)`` float32 (float64 for a float64 model): sum of log p(label tokens | prompt) per label (token-id
    sequences, each non-empty); ``chunk`` > 0 runs that many labels at a time against the one prompt cache."""
    return label_token_logprobs(model, prompt, labels, runner, chunk).sum(dim=1)


@torch.no_grad()
def label_token_logprobs(model, prompt: Sequence[int], labels: Sequence[Sequence[int]],
                         runner: Runner | None = None, chunk: int = 0) -> torch.Tensor:
    """``(K, longest label)``: log p of each label token given the prompt and the label's earlier tokens; 0 past
    a label's end. The prompt runs once; ``chunk`` bounds the labels (and their logits) run together."""
    if not prompt or any(len(lab) == 0 for lab in labels):
        raise ValueError("the prompt and every label need at least one token")
    runner = runner or Runner(model)
    n, width = len(prompt), max(len(lab) for lab in labels)
    root = runner.new_cache()
    first = runner.forward(torch.tensor([list(prompt)]), torch.ones(1, n, dtype=torch.long),
                           torch.arange(n)[None], root)[:, -1]
    first = _upcast(first).log_softmax(-1)[0].cpu()                       # (vocab,)
    step = chunk if chunk > 0 else len(labels)
    out = torch.zeros(len(labels), width, dtype=first.dtype)             # (K, W) log p of each label token
    for start in range(0, len(labels), step):
        part = labels[start:start + step]
        out[start:start + len(part), :max(map(len, part))] = _labels_after(runner, root, n, part, first)
    return out


def _labels_after(runner: Runner, root, n: int, labels: Sequence[Sequence[int]], first: torch.Tensor) -> torch.Tensor:
    """``(k, longest)`` token log-probs of ``labels`` run right-padded against copies of the prompt cache ``root``."""
    k, width = len(labels), max(len(lab) for lab in labels)
    ids = torch.zeros((k, width), dtype=torch.long)
    own = torch.zeros((k, width), dtype=torch.long)
    for i, lab in enumerate(labels):
        ids[i, :len(lab)], own[i, :len(lab)] = torch.tensor(list(lab)), 1
    logp = torch.zeros(k, width, dtype=first.dtype)                       # (k, W)
    logp[:, 0] = first[ids[:, 0]]
    if width > 1:  # the last label token predicts nothing we need
        mask = torch.cat([torch.ones(k, n, dtype=torch.long), own[:, :-1]], dim=1)
        pos = (n + torch.arange(width - 1))[None].expand(k, -1)
        logits = runner.forward(ids[:, :-1], mask, pos, fork(root, k, runner), keep=0)  # (k, W-1, vocab)
        rest = _upcast(logits).log_softmax(-1).cpu()
        logp[:, 1:] = rest.gather(-1, ids[:, 1:, None])[..., 0]
    return logp * own


def _upcast(t: torch.Tensor) -> torch.Tensor:
    """Half-precision logits go to float32 for the softmax; float64 (exactness tests) stays float64."""
    return t if t.dtype == torch.float64 else t.float()
