"""Batched greedy generation with left padding: the answers every metric, error and robustness check reads."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Optional, Sequence

import torch

from core.evaluation.prompts import end_token_ids

ProgressFn = Callable[[float, str], None]


@dataclass
class Decoding:
    """Decoding settings, recorded in the report so base and tuned are compared under the same ones."""

    max_new_tokens: int = 128
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    batch_size: int = 8
    seed: int = 0

    def to_dict(self) -> dict:
        """Plain dict for the report."""
        return asdict(self)


@dataclass
class Answer:
    """One generated answer."""

    text: str
    n_tokens: int    # generated tokens before the end token
    finished: bool   # False when the answer hit max_new_tokens without ending


@torch.no_grad()
def generate_batch(model, tok, prompts: Sequence[Sequence[int]], decoding: Optional[Decoding] = None,
                   progress: Optional[ProgressFn] = None, label: str = "generating") -> list[Answer]:
    """Answers for token-id prompts, in input order; prompts of similar length share a left-padded batch."""
    decoding = decoding or Decoding()
    device = next(model.parameters()).device
    ends = end_token_ids(tok)
    pad = tok.pad_token_id if tok.pad_token_id is not None else ends[0]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    answers: list[Optional[Answer]] = [None] * len(prompts)
    if decoding.do_sample:
        torch.manual_seed(decoding.seed)
    done = 0
    for start in range(0, len(order), decoding.batch_size):
        idx = order[start:start + decoding.batch_size]
        width = max(len(prompts[i]) for i in idx)
        ids = torch.full((len(idx), width), pad, dtype=torch.long)
        att = torch.zeros((len(idx), width), dtype=torch.long)
        for r, i in enumerate(idx):
            p = list(prompts[i])
            ids[r, width - len(p):] = torch.tensor(p, dtype=torch.long)
            att[r, width - len(p):] = 1
        kwargs = dict(max_new_tokens=decoding.max_new_tokens, do_sample=decoding.do_sample,
                      pad_token_id=pad, eos_token_id=ends)
        if decoding.do_sample:
            kwargs.update(temperature=decoding.temperature, top_p=decoding.top_p)
        else:  # the model's generation_config may carry sampling defaults; greedy must not see them
            kwargs.update(temperature=None, top_p=None, top_k=None)
        out = model.generate(input_ids=ids.to(device), attention_mask=att.to(device), **kwargs)
        for r, i in enumerate(idx):
            answers[i] = _answer(tok, out[r, width:].tolist(), ends)
        done += len(idx)
        if progress:
            progress(done / len(prompts), label)
    return answers  # type: ignore[return-value]


def _answer(tok, new_tokens: list[int], ends: list[int]) -> Answer:
    for n, t in enumerate(new_tokens):
        if t in ends:
            return Answer(tok.decode(new_tokens[:n], skip_special_tokens=True), n, True)
    return Answer(tok.decode(new_tokens, skip_special_tokens=True), len(new_tokens), False)
