"""Batched decoding: the prompts' shared prefix computed once, continuous batching, streaming.

``Decoder.generate(prompts, params, batch_size)`` keeps at most ``batch_size`` rows decoding at once. The longest
token prefix all prompts share (system prompt and chat-template tokens) is run ONCE into a 1-row cache; every
admitted group of prompts gets that cache copied to its rows and prefills only its own suffixes, left-padded
(masked columns, per-row position ids). Each step appends one token to every active row; a row that ends (end
token, stop string, its token limit) leaves at once, and the next queued prompts take its place in the following
step, so no row waits for the batch's longest answer. Answers come back in input order.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, Sequence

import torch
from transformers import DynamicCache

from core.chat_template import end_token_ids
from core.decoding.kvcache import (Runner, concat_rows, drop_columns, fork, insert_columns, select_rows)
from core.decoding.rows import Answer, Row
from core.decoding.sampling import SamplingParams, make_generator, next_tokens

ProgressFn = Callable[[float, str], None]


@dataclass
class Active:
    """The rows decoding together: one cache, one 2-D mask over its real columns, a next position per row."""

    cache: DynamicCache
    mask: torch.Tensor   # (B, real columns) 1 where the row attends
    pos: torch.Tensor    # (B,) position id of the token each row feeds next
    last: list[int]      # the token each row feeds next
    rows: list[Row]


def shared_prefix(prompts: Sequence[Sequence[int]]) -> int:
    """Length of the token prefix common to all prompts, leaving every prompt at least one token of its own."""
    first, n = prompts[0], min(len(p) for p in prompts) - 1
    for p in prompts[1:]:
        n = next((i for i in range(n) if p[i] != first[i]), n)
    return max(n, 0)


def end_ids_of(tok) -> list[int]:
    """The tokenizer's end-of-turn ids (the chat template's definition, shared with chat and evaluation)."""
    return end_token_ids(tok)


class Decoder:
    """Greedy or sampled decoding of token-id prompts with our own KV cache handling."""

    def __init__(self, model, tok, end_ids: Optional[Sequence[int]] = None):
        self.runner, self.tok = Runner(model), tok
        self.ends = list(end_ids) if end_ids is not None else end_ids_of(tok)
        self.pad = tok.pad_token_id if tok.pad_token_id is not None else self.ends[0]

    def generate(self, prompts: Sequence[Sequence[int]], params: Optional[SamplingParams] = None,
                 batch_size: int = 8, limits: Optional[Sequence[int]] = None,
                 progress: Optional[ProgressFn] = None, label: str = "generating") -> list[Answer]:
        """Answers for token-id prompts, in input order; ``limits`` overrides max_new_tokens per prompt."""
        answers: list[Optional[Answer]] = [None] * len(prompts)
        done = 0
        for row in self.events(prompts, params, batch_size, limits):
            if row.done:
                answers[row.index], done = row.answer(), done + 1
                if progress:
                    progress(done / len(prompts), label)
        return answers  # type: ignore[return-value]

    def stream(self, prompt: Sequence[int], params: Optional[SamplingParams] = None) -> Iterator[str]:
        """Text deltas of one answer as it is decoded; joined they equal ``generate([prompt])[0].text``."""
        for row in self.events([prompt], params, 1):
            delta = row.delta()
            if delta:
                yield delta

    def events(self, prompts: Sequence[Sequence[int]], params: Optional[SamplingParams] = None,
               batch_size: int = 8, limits: Optional[Sequence[int]] = None) -> Iterator[Row]:
        """Yield a prompt's ``Row`` each time it receives a token (``row.tokens``, ``row.done``)."""
        params = params or SamplingParams()
        if any(len(p) == 0 for p in prompts):
            raise ValueError("every prompt needs at least one token")
        if not prompts:
            return
        if limits is not None and len(limits) != len(prompts):
            raise ValueError(f"{len(limits)} limits for {len(prompts)} prompts")
        gen, ends = make_generator(params), self.ends + list(params.stop_token_ids)
        n_shared = shared_prefix(prompts)
        root = self._prefill_root(list(prompts[0][:n_shared])) if n_shared else None
        queue = deque(Row(i, p, limits[i] if limits else params.max_new_tokens, self.tok, ends, params.stop_strings)
                      for i, p in enumerate(prompts))
        active: Optional[Active] = None
        while queue or active:
            room = batch_size - (len(active.rows) if active else 0)
            if queue and room > 0:
                group = [queue.popleft() for _ in range(min(room, len(queue)))]
                active = self._merge(active, self._admit(group, root, n_shared, params, gen), n_shared)
                yield from group
            if active:
                rows = active.rows
                active = self._step(active, n_shared, params, gen)
                yield from rows

    # ------------------------------------------------------------------ steps
    def _prefill_root(self, ids: list[int]) -> DynamicCache:
        cache = self.runner.new_cache()
        n = len(ids)
        self.runner.forward(torch.tensor([ids]), torch.ones(1, n, dtype=torch.long), torch.arange(n)[None], cache)
        return cache

    def _admit(self, group: list[Row], root: Optional[DynamicCache], n_shared: int, params: SamplingParams,
               gen) -> Optional[Active]:
        """Prefill the group's own suffixes (left-padded) on copies of the shared-prefix cache; first tokens."""
        suffixes = [r.prompt[n_shared:] for r in group]
        k, width = len(group), max(len(s) for s in suffixes)
        lens = torch.tensor([len(s) for s in suffixes])                       # (k,)
        ids = torch.full((k, width), self.pad, dtype=torch.long)               # (k, W)
        own = torch.zeros((k, width), dtype=torch.long)
        for i, s in enumerate(suffixes):
            ids[i, width - len(s):], own[i, width - len(s):] = torch.tensor(s), 1
        mask = torch.cat([torch.ones(k, n_shared, dtype=torch.long), own], dim=1)        # (k, P+W)
        pos = n_shared + (torch.arange(width)[None] - (width - lens)[:, None]).clamp(min=0)  # (k, W)
        cache = fork(root, k, self.runner)
        logits = self.runner.forward(ids, mask, pos, cache)[:, -1]             # (k, vocab)
        toks = next_tokens(logits, params, [r.seen() for r in group], gen)
        for r, t in zip(group, toks):
            r.feed(t)
        return self._drop_done(Active(cache, mask, n_shared + lens, toks, group), n_shared)

    def _step(self, a: Active, n_shared: int, params: SamplingParams, gen) -> Optional[Active]:
        """Feed every row its last token (one new column), sample the next, let finished rows leave."""
        b = len(a.rows)
        a.mask = torch.cat([a.mask, torch.ones(b, 1, dtype=torch.long)], dim=1)
        logits = self.runner.forward(torch.tensor(a.last).view(b, 1), a.mask, a.pos.view(b, 1), a.cache)[:, -1]
        a.pos = a.pos + 1
        a.last = next_tokens(logits, params, [r.seen() for r in a.rows], gen)
        for r, t in zip(a.rows, a.last):
            r.feed(t)
        return self._drop_done(a, n_shared)

    # ------------------------------------------------------------------ cache bookkeeping
    def _drop_done(self, a: Active, n_shared: int) -> Optional[Active]:
        """Remove finished rows, then the row-region columns no remaining row attends to."""
        keep = [i for i, r in enumerate(a.rows) if not r.done]
        if not keep:
            return None
        if len(keep) < len(a.rows):
            idx = torch.tensor(keep)
            select_rows(a.cache, idx)
            a.mask, a.pos = a.mask[idx], a.pos[idx]
            a.last, a.rows = [a.last[i] for i in keep], [a.rows[i] for i in keep]
            used = a.mask[:, n_shared:].any(dim=0)                             # (region,)
            lead = int(used.int().argmax())  # leading columns masked for every row
            if lead:
                start = self.runner.virtual + n_shared
                drop_columns(a.cache, start, start + lead)
                a.mask = torch.cat([a.mask[:, :n_shared], a.mask[:, n_shared + lead:]], dim=1)
        return a

    def _merge(self, a: Optional[Active], b: Optional[Active], n_shared: int) -> Optional[Active]:
        """One batch of ``a``'s and ``b``'s rows: the narrower row region is left-padded with masked columns."""
        if a is None or b is None:
            return a or b
        width = max(x.mask.shape[1] for x in (a, b))
        for x in (a, b):
            n = width - x.mask.shape[1]
            if n:
                insert_columns(x.cache, self.runner.virtual + n_shared, n)
                pad = torch.zeros(x.mask.shape[0], n, dtype=torch.long)
                x.mask = torch.cat([x.mask[:, :n_shared], pad, x.mask[:, n_shared:]], dim=1)
        return Active(concat_rows(a.cache, b.cache), torch.cat([a.mask, b.mask]), torch.cat([a.pos, b.pos]),
                      a.last + b.last, a.rows + b.rows)
