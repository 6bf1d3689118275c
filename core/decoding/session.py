"""A chat conversation that keeps its KV cache between turns, so a new turn runs only its new tokens.

Each turn renders the whole conversation with the chat template, keeps the cached tokens it shares with the
rendering (usually everything up to the new user message), crops the cache to them and prefills the rest. Token ids
are compared, not text, so an answer that re-tokenises differently, or was cut at a stop string, only costs
re-running its tail.
"""
from __future__ import annotations

from typing import Iterator, Optional

import torch

from core.decoding.batch import end_ids_of
from core.decoding.kvcache import Runner, crop_to
from core.decoding.rows import Row
from core.decoding.sampling import SamplingParams, make_generator, next_tokens


class ChatSession:
    """Multi-turn chat over one model: ``send(text)`` or ``stream(text)``; ``reset()`` forgets the conversation."""

    def __init__(self, model, tok, system_prompt: Optional[str] = None, params: Optional[SamplingParams] = None):
        self.runner, self.tok, self.ends = Runner(model), tok, end_ids_of(tok)
        self.system_prompt, self.params = system_prompt, params or SamplingParams(max_new_tokens=256)
        self.reset()

    def reset(self) -> None:
        """Forget the conversation and its cache."""
        self.messages: list[dict] = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        self.cache, self.ids = self.runner.new_cache(), []  # ids: the real tokens the cache holds, in order

    def send(self, text: str, params: Optional[SamplingParams] = None) -> str:
        """The assistant's whole answer to ``text`` (added to the conversation)."""
        return "".join(self.stream(text, params))

    def stream(self, text: str, params: Optional[SamplingParams] = None) -> Iterator[str]:
        """Text deltas of the answer to ``text``; the answer joins the conversation when the stream ends."""
        params = params or self.params
        prompt = self._render(self.messages + [{"role": "user", "content": text}])
        row = Row(0, prompt, params.max_new_tokens, self.tok, self.ends + list(params.stop_token_ids),
                  params.stop_strings)
        gen, logits = make_generator(params), self._prefill(prompt)
        while True:
            token = next_tokens(logits, params, [row.seen()], gen)[0]
            row.feed(token)
            delta = row.delta()
            if delta:
                yield delta
            if row.done:
                break
            logits = self._feed([token])
        self.messages += [{"role": "user", "content": text}, {"role": "assistant", "content": row.answer().text}]

    def _render(self, messages: list[dict]) -> list[int]:
        text = self.tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return self.tok(text, add_special_tokens=False)["input_ids"]

    def _prefill(self, prompt: list[int]) -> torch.Tensor:
        """Reuse the cached tokens ``prompt`` starts with; run the rest. Logits (1, vocab) of the last token."""
        n = 0
        limit = min(len(self.ids), len(prompt) - 1)  # at least one token to run: its logits start the answer
        while n < limit and self.ids[n] == prompt[n]:
            n += 1
        crop_to(self.cache, n, self.runner.virtual)
        self.ids = self.ids[:n]
        return self._feed(prompt[n:])

    def _feed(self, new: list[int]) -> torch.Tensor:
        start, total = len(self.ids), len(self.ids) + len(new)
        mask = torch.ones(1, total, dtype=torch.long)
        pos = torch.arange(start, total)[None]
        logits = self.runner.forward(torch.tensor([new]), mask, pos, self.cache)[:, -1]
        self.ids += new
        return logits
