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
                   runner: Runner | None = None) -> torch.Tensor:
    """``(K,)`` float32: sum of log p(label tokens | prompt) per label (token-id sequences, each non-empty)."""
    return label_token_logprobs(model, prompt, labels, runner).sum(dim=1)


@torch.no_grad()
def label_token_logprobs(model, prompt: Sequence[int], labels: Sequence[Sequence[int]],
                         runner: Runner | None = None) -> torch.Tensor:
    """``(K, longest label)``: log p of each label token given the prompt and the label's earlier tokens; 0 past
    a label's end."""
    if not prompt or any(len(lab) == 0 for lab in labels):
        raise ValueError("the prompt and every label need at least one token")
    runner = runner or Runner(model)
    n, k, width = len(prompt), len(labels), max(len(lab) for lab in labels)
    root = runner.new_cache()
    first = runner.forward(torch.tensor([list(prompt)]), torch.ones(1, n, dtype=torch.long),
                           torch.arange(n)[None], root)[:, -1].float().log_softmax(-1)  # (1, vocab)
    ids = torch.zeros((k, width), dtype=torch.long)
    own = torch.zeros((k, width), dtype=torch.long)
    for i, lab in enumerate(labels):
        ids[i, :len(lab)], own[i, :len(lab)] = torch.tensor(list(lab)), 1
    logp = torch.zeros(k, width)                                          # (K, W) log p of each label token
    logp[:, 0] = first[0].cpu()[ids[:, 0]]
    if width > 1:  # the last label token predicts nothing we need
        mask = torch.cat([torch.ones(k, n, dtype=torch.long), own[:, :-1]], dim=1)
        pos = (n + torch.arange(width - 1))[None].expand(k, -1)
        logits = runner.forward(ids[:, :-1], mask, pos, fork(root, k, runner), keep=0)  # (K, W-1, vocab)
        rest = logits.float().log_softmax(-1).cpu()
        logp[:, 1:] = rest.gather(-1, ids[:, 1:, None])[..., 0]
    return logp * own
