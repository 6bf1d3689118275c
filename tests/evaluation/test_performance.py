"""PerformanceTester measures our decoder (never HF generate) and says how many answers it generated."""
from __future__ import annotations

import pytest

from core.evaluation.performance import PerformanceTester
from tests.evaluation.conftest import one_thread  # noqa: F401 - autouse fixture


def test_measures_our_decoder_and_counts_its_answers(tiny):
    model, tok = tiny

    def no_hf(*a, **k):
        raise AssertionError("HF generate must not be used")

    model.generate = no_hf
    msgs = [[{"role": "user", "content": q}] for q in ("hi", "where is my card?")]
    out = PerformanceTester(tok, msgs, max_new_tokens=5, batch_size=3).measure(model, "base")
    assert out["answers"] == 1 + 2 + 3  # warmup, single-stream, one batch of 3
    assert 0 < out["ttft_p50_s"] <= out["latency_p50_s"] <= out["seconds"]
    assert 1 <= out["mean_new_tokens"] <= 5 and out["tokens_per_s"] > 0 and out["batch_tokens_per_s"] > 0
    assert out["peak_rss_mb"] > 0


def test_needs_a_prompt(tiny):
    with pytest.raises(ValueError):
        PerformanceTester(tiny[1], [])
