"""The quality report of preference pairs: identical sides, empty sides, length bias, duplicate prompts.

Same shape as ``DataQualityAnalyzer.analyze``'s report (score, deductions with codes, checks) plus
``checks["preference"]`` with the pair figures; the general checks (size, token lengths of the prompt with its
longer side, script, personal data, formatting) run on the pairs as conversations.
"""
from __future__ import annotations

import statistics
from typing import Any

from .pairs import PreferencePair
from .quality import DataQualityAnalyzer, TokenCounter
from .text import norm_key

LENGTH_BIAS_SHARE = 0.7  # chosen longer (or shorter) in this share of pairs: the model may learn length, not quality
LENGTH_BIAS_MIN_PAIRS = 20  # fewer pairs say little about a bias


def side_text(messages: list[dict]) -> str:
    """The text of a side (or a prompt) as one string."""
    return "\n".join(m["content"] for m in messages)


def _conv(pair: PreferencePair, *sides: str) -> dict:
    return {"messages": pair.prompt + [m for s in sides for m in getattr(pair, s)], "meta": dict(pair.meta)}


def identical_or_empty(pairs: list[PreferencePair]) -> tuple[list[int], list[int]]:
    """Indices of pairs that teach nothing: an empty side (or prompt), or chosen equal to rejected."""
    empty, identical = [], []
    for i, pair in enumerate(pairs):
        texts = [side_text(pair.prompt), side_text(pair.chosen), side_text(pair.rejected)]
        if not all(t.strip() for t in texts):
            empty.append(i)
        elif norm_key(texts[1]) == norm_key(texts[2]):
            identical.append(i)
    return empty, identical


def pair_figures(pairs: list[PreferencePair], tokenizer: Any = None) -> dict:
    """Row indices of identical and empty pairs and duplicate prompts; the length-bias figures."""
    empty, identical = identical_or_empty(pairs)
    dup: list[int] = []
    first_prompt: dict[str, int] = {}
    chosen_t = [side_text(p.chosen) for p in pairs]
    rejected_t = [side_text(p.rejected) for p in pairs]
    for i, pair in enumerate(pairs):
        key = norm_key(side_text(pair.prompt))
        if key in first_prompt:
            dup.append(i)
        else:
            first_prompt.setdefault(key, i)
    counter = TokenCounter(tokenizer)
    lc, lr = counter.count_texts(chosen_t).tolist(), counter.count_texts(rejected_t).tolist()
    longer = [i for i in range(len(pairs)) if lc[i] > lr[i]]
    shorter = [i for i in range(len(pairs)) if lc[i] < lr[i]]
    differ = len(longer) + len(shorter)
    ratios = [lc[i] / lr[i] for i in range(len(pairs)) if lc[i] and lr[i]]
    return {"identical": identical, "empty": empty, "duplicate_prompts": dup, "chosen_longer": longer,
            "chosen_shorter": shorter,
            "chosen_longer_share": round(len(longer) / differ, 4) if differ else None,
            "median_length_ratio": round(statistics.median(ratios), 3) if ratios else None,
            "mean_chosen_tokens": round(sum(lc) / max(1, len(lc)), 1),
            "mean_rejected_tokens": round(sum(lr) / max(1, len(lr)), 1), "distinct_prompts": len(first_prompt)}


def _deduct_pairs(analyzer: DataQualityAnalyzer, figs: dict, n: int) -> None:
    """Findings of the pair checks, with the analyzer's scoring and row listing."""
    n = max(1, n)
    points = analyzer.points
    analyzer.deduct("preference", "pref_empty", {"rows": len(figs["empty"])},
                     points(len(figs["empty"]) / n, 100, 20, 2), figs["empty"])
    analyzer.deduct("preference", "pref_identical", {"rows": len(figs["identical"])},
                     points(len(figs["identical"]) / n, 100, 20, 3), figs["identical"])
    analyzer.deduct("preference", "pref_duplicate_prompts",
                     {"rows": len(figs["duplicate_prompts"]), "distinct": figs["distinct_prompts"]},
                     points(len(figs["duplicate_prompts"]) / n, 30, 10), figs["duplicate_prompts"])
    share = figs["chosen_longer_share"]
    differ = len(figs["chosen_longer"]) + len(figs["chosen_shorter"])
    if share is not None and differ >= LENGTH_BIAS_MIN_PAIRS and max(share, 1 - share) >= LENGTH_BIAS_SHARE:
        side = "longer" if share >= 0.5 else "shorter"
        rows = figs["chosen_longer"] if side == "longer" else figs["chosen_shorter"]
        analyzer.deduct("preference", f"pref_length_bias_{side}",
                         {"share": round(100 * max(share, 1 - share)), "ratio": figs["median_length_ratio"]},
                         5, rows)


def analyze_pairs(pairs: list[PreferencePair], info: dict | None = None, tokenizer: Any = "default",
                  max_seq_len: int = 512, analyzer: DataQualityAnalyzer | None = None) -> dict:
    """The quality report of preference pairs (see the module docstring)."""
    analyzer = analyzer or DataQualityAnalyzer(tokenizer=tokenizer, max_seq_len=max_seq_len)
    info = dict(info or {})
    figs = pair_figures(pairs, analyzer.tokenizer)
    longest = [_conv(p, "chosen" if i in set(figs["chosen_longer"]) else "rejected") for i, p in enumerate(pairs)]
    report = analyzer.analyze(longest, info, only=("size", "lengths"))
    rest = analyzer.analyze([_conv(p, "chosen", "rejected") for p in pairs], info,
                            only=("script", "pii", "formatting"))
    _deduct_pairs(analyzer, figs, len(pairs))
    deductions = report["deductions"] + analyzer.findings()  # the second run's findings, then the pair ones
    checks = {**report["checks"], **rest["checks"],
              "preference": {k: (len(v) if isinstance(v, list) else v) for k, v in figs.items()}}
    checks["preference"]["length_bias_threshold"] = LENGTH_BIAS_SHARE
    lost = sum(d["points"] for d in deductions)
    return {**report, "kind": "preference", "score": max(0, 100 - lost), "checks": checks,
            "deductions": sorted(deductions, key=lambda d: -d["points"])}
