"""bench/generation.py is reachable as `python -m core bench generation` and its table reads its cases right."""
from __future__ import annotations

import importlib
import inspect


def test_registered_in_the_bench_verb():
    from bench.cli import BENCHES

    module = importlib.import_module(BENCHES["generation"])
    assert "quick" in inspect.signature(module.main).parameters
    assert module.BITEXT.name == "bitext_customer_support" and module.BITEXT.parent.name == "data"


def test_table_reports_ratios_agreement_and_threads():
    from bench.generation import table

    turn = lambda ttft, tps, text: {"ttft_s": ttft, "decode_tokens_per_s": tps, "text": text}  # noqa: E731
    chat = {"hf": {"turns": [turn(0.3, 10, "a"), turn(0.4, 10, "b"), turn(0.5, 10, "c")], "peak_rss_mb": 900,
                   "threads": 2},
            "ours": {"turns": [turn(0.1, 20, "a"), turn(0.1, 20, "b"), turn(0.1, 20, "x")], "peak_rss_mb": 800,
                     "threads": 1}}
    evals = [{"impl": impl, "batch": b, "tokens_per_s": tps, "prompts_per_s": 1.0, "peak_rss_mb": 700,
              "texts": ["p", "q"] if impl == "hf" else ["p", "z"], "threads": 1}
             for b in (1, 8, 32) for impl, tps in (("hf", 10.0), ("ours", 55.0))]
    int8 = {"tokens_per_s": {"fp32": 10.0, "int8": 19.0}, "agree": 3, "answers": 4, "peak_rss_mb": 600}
    text = table(chat, evals, int8)
    assert "eval batch 8: ours/HF tokens/s = 5.50x" in text
    assert "chat turn 1: ours/HF tokens/s = 2.00x" in text
    assert "3/4 (75%)" in text and "(1.90x)" in text
    assert " 67% " in text.split("chat ours")[1].splitlines()[0]  # two of three turns identical to HF's
