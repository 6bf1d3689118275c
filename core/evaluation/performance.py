"""PerformanceTester: time to first token, latency p50/p95, tokens/s, peak memory and batch throughput.

Peak memory is the process's resident set size (psutil RSS) sampled every 5 ms while the model answers, so it
covers the weights, activations and the KV cache of that phase (and anything else the process holds).
"""
from __future__ import annotations

import threading
import time
from typing import Optional, Sequence

import psutil
import torch
from transformers.generation.streamers import BaseStreamer

from core.evaluation.generation import Decoding, generate_batch
from core.evaluation.prompts import end_token_ids, prompt_ids


class _FirstTokenClock(BaseStreamer):
    """A streamer that only notes when the first generated token arrives (the first put() is the prompt)."""

    def __init__(self):
        self.calls, self.first = 0, None

    def put(self, value):
        self.calls += 1
        if self.calls == 2 and self.first is None:
            self.first = time.perf_counter()

    def end(self):
        pass


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
    def _one(self, model, ids: list[int]) -> tuple[float, float, int]:
        """(time to first token, total latency, generated tokens) of one unbatched greedy answer."""
        device = next(model.parameters()).device
        ends = end_token_ids(self.tok)
        clock = _FirstTokenClock()
        x = torch.tensor([ids], device=device)
        t0 = time.perf_counter()
        out = model.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=self.max_new_tokens,
                             do_sample=False, temperature=None, top_p=None, top_k=None, streamer=clock,
                             pad_token_id=self.tok.pad_token_id if self.tok.pad_token_id is not None else ends[0],
                             eos_token_id=ends)
        total = time.perf_counter() - t0
        new = out[0, len(ids):].tolist()
        n = next((i + 1 for i, t in enumerate(new) if t in ends), len(new))
        return ((clock.first or time.perf_counter()) - t0, total, n)

    def measure(self, model, name: str = "model") -> dict:
        """TTFT and latency percentiles, tokens/s (single and batched), peak RSS for one model."""
        for ids in self.prompts[:self.warmup]:
            self._one(model, ids)
        ttft, latency, tokens = [], [], []
        with _RSSSampler() as mem:
            for ids in self.prompts:
                a, b, n = self._one(model, ids)
                ttft.append(a)
                latency.append(b)
                tokens.append(n)
            batch = (self.prompts * ((self.batch_size + len(self.prompts) - 1) // len(self.prompts)))[:self.batch_size]
            t0 = time.perf_counter()
            answers = generate_batch(model, self.tok, batch,
                                     Decoding(max_new_tokens=self.max_new_tokens, batch_size=self.batch_size))
            batch_s = time.perf_counter() - t0
        batch_tokens = sum(a.n_tokens + (1 if a.finished else 0) for a in answers)
        return {"name": name, "n_prompts": len(self.prompts), "max_new_tokens": self.max_new_tokens,
                "ttft_p50_s": percentile(ttft, 50), "ttft_p95_s": percentile(ttft, 95),
                "latency_p50_s": percentile(latency, 50), "latency_p95_s": percentile(latency, 95),
                "tokens_per_s": sum(tokens) / sum(latency) if sum(latency) else None,
                "mean_new_tokens": sum(tokens) / len(tokens),
                "batch_size": self.batch_size, "batch_tokens_per_s": batch_tokens / batch_s if batch_s else None,
                "peak_rss_mb": mem.peak / 2**20}
