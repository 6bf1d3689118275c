"""PerformanceTester: time to first token, latency p50/p95, tokens/s, peak memory and batch throughput.

It measures our decoder (core/decoding), the one chat and evaluation answer with: single-stream answers one by one
(TTFT: the first sampled token), then all prompts as one continuous batch. Each measure reports how many answers it
generated and how long it took, so ``--limit`` can be checked to bound it.

Peak memory is the process's resident set size (psutil RSS) sampled every 5 ms while the model answers, so it
covers the weights, activations and the KV cache of that phase (and anything else the process holds).
"""
from __future__ import annotations

import threading
import time
from typing import Optional, Sequence

import psutil
import torch

from core.decoding import Decoder, SamplingParams
from core.evaluation.prompts import prompt_ids


class _RSSSampler:
    """Peak RSS of this process while the ``with`` block runs."""

    def __init__(self, interval: float = 0.005):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._proc = psutil.Process()

    def __enter__(self):
        self.peak = self._proc.memory_info().rss
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def _loop(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


def percentile(values: Sequence[float], q: float) -> Optional[float]:
    """Linear-interpolated percentile (q in 0–100) of a non-empty sequence, else None."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo, hi = int(pos), min(int(pos) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


class PerformanceTester:
    """Measures one model at a time on the same prompts with the same greedy settings."""

    def __init__(self, tok, messages: Sequence[list[dict]], max_new_tokens: int = 32, batch_size: int = 8,
                 warmup: int = 1):
        if not messages:
            raise ValueError("PerformanceTester needs at least one prompt")
        self.tok, self.messages = tok, list(messages)
        self.max_new_tokens, self.batch_size, self.warmup = max_new_tokens, batch_size, warmup
        self.prompts = [prompt_ids(tok, m) for m in self.messages]

    @torch.no_grad()
    def _one(self, decoder: Decoder, ids: list[int], limit: int) -> tuple[float, float, int]:
        """(time to first token, total latency, generated tokens) of one unbatched greedy answer."""
        t0, first, row = time.perf_counter(), None, None
        for row in decoder.events([ids], SamplingParams(max_new_tokens=limit), batch_size=1):
            first = first or time.perf_counter()
        return first - t0, time.perf_counter() - t0, row.fed  # fed: the end token counts, as HF's did

    def measure(self, model, name: str = "model") -> dict:
        """TTFT and latency percentiles, tokens/s (single and batched), peak RSS, answers and seconds."""
        t_start, decoder = time.perf_counter(), Decoder(model, self.tok)
        for ids in self.prompts[:self.warmup]:  # first-call costs (allocations, thread pools), not a real answer
            self._one(decoder, ids, 2)
        ttft, latency, tokens = [], [], []
        with _RSSSampler() as mem:
            for ids in self.prompts:
                a, b, n = self._one(decoder, ids, self.max_new_tokens)
                ttft.append(a)
                latency.append(b)
                tokens.append(n)
            batch = (self.prompts * ((self.batch_size + len(self.prompts) - 1) // len(self.prompts)))[:self.batch_size]
            t0 = time.perf_counter()
            answers = decoder.generate(batch, SamplingParams(max_new_tokens=self.max_new_tokens), self.batch_size)
            batch_s = time.perf_counter() - t0
        batch_tokens = sum(a.n_tokens + (1 if a.finished else 0) for a in answers)
        return {"name": name, "n_prompts": len(self.prompts), "max_new_tokens": self.max_new_tokens,
                "ttft_p50_s": percentile(ttft, 50), "ttft_p95_s": percentile(ttft, 95),
                "latency_p50_s": percentile(latency, 50), "latency_p95_s": percentile(latency, 95),
                "tokens_per_s": sum(tokens) / sum(latency) if sum(latency) else None,
                "mean_new_tokens": sum(tokens) / len(tokens),
                "batch_size": self.batch_size, "batch_tokens_per_s": batch_tokens / batch_s if batch_s else None,
                "peak_rss_mb": mem.peak / 2**20,
                "answers": min(self.warmup, len(self.prompts)) + len(self.prompts) + len(batch),
                "seconds": time.perf_counter() - t_start}
