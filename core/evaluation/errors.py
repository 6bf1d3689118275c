"""ErrorAnalyzer: where the model fails — worst examples and error categories with counts.

Categories (an example may fall in several):
  * ``empty``               the answer is empty or whitespace only;
  * ``cut_off``             generation hit the length limit (``max_new_tokens``) before the end token;
  * ``repetition_loop``     a unit of 1–10 tokens repeats at least 3 times back to back over >= 6 tokens and
                            >= 30 % of the answer, or (answers of >= 20 tokens) under half of the 4-grams are distinct;
  * ``label_not_in_set``    classification: a non-empty answer that names no known label;
  * ``wrong_label``         classification: a known label, but not the right one (with the most confused pairs);
  * ``different_language``  the answer's script (CJK vs Latin) differs from the question's (free-text data only:
                            labels have a fixed language).
Tokens are ``textmetrics.segment`` tokens (words; characters for CJK); an answer with none (only symbols) is
checked on its characters.
"""
from __future__ import annotations

from collections import Counter
from typing import Optional, Sequence

from core.evaluation.prompts import last_user_text
from core.evaluation.textmetrics import cjk_share, segment

CATEGORIES = ("empty", "cut_off", "repetition_loop", "label_not_in_set", "wrong_label", "different_language")


def _units(text: str) -> list[str]:
    tokens = segment(text)
    return tokens if tokens else [ch for ch in text if not ch.isspace()]


def is_repetition_loop(text: str) -> bool:
    """True for degenerate looping answers (see the module docstring for the rule)."""
    units = _units(text)
    n = len(units)
    for p in range(1, 11):
        run = 0
        for i in range(p, n):
            run = run + 1 if units[i] == units[i - p] else 0
            span = run + p  # tokens covered by the repeating stretch ending at i
            if run >= 2 * p and span >= 6 and span >= 0.3 * n:
                return True
    if n >= 20:
        grams = [tuple(units[i:i + 4]) for i in range(n - 3)]
        return len(set(grams)) < 0.5 * len(grams)
    return False


def script(text: str) -> Optional[str]:
    """'zh' (mostly CJK letters), 'latin' (mostly ASCII/Latin letters), 'other', or None for < 2 letters."""
    letters = [ch for ch in text or "" if ch.isalpha()]
    if len(letters) < 2:
        return None
    if cjk_share(text) >= 0.3:
        return "zh"
    latin = sum(ch.isascii() or "\u00c0" <= ch <= "\u024f" for ch in letters) / len(letters)
    return "latin" if latin >= 0.7 else "other"


class ErrorAnalyzer:
    """Categorises per-example records produced by ``MultiMetricEvaluator.evaluate_model``."""

    def __init__(self, examples: Sequence[dict], labels: Optional[Sequence[str]] = None, n_examples: int = 5):
        self.examples, self.labels, self.n_examples = list(examples), list(labels) if labels else None, n_examples

    def categories_of(self, ex: dict) -> list[str]:
        """The error categories one example falls in."""
        answer = ex.get("answer") or ""
        cats = []
        if not answer.strip():
            cats.append("empty")
        if ex.get("finished") is False:
            cats.append("cut_off")
        if answer.strip() and is_repetition_loop(answer):
            cats.append("repetition_loop")
        if self.labels:
            predicted = ex.get("predicted_label")
            if predicted is None and answer.strip():
                cats.append("label_not_in_set")
            elif predicted is not None and predicted != ex.get("reference"):
                cats.append("wrong_label")
        else:
            q, a = script(last_user_text(ex.get("messages") or [])), script(answer)
            if q and a and q != a:
                cats.append("different_language")
        return cats

    def analyze(self) -> dict:
        """{"n", "categories": {name: {count, share, examples}}, "confused_pairs", "worst": {metric: [...]}}."""
        n = len(self.examples)
        found = {c: [] for c in CATEGORIES}
        for ex in self.examples:
            for c in self.categories_of(ex):
                found[c].append(ex)
        cats = {c: {"count": len(v), "share": len(v) / n if n else 0.0,
                    "examples": [self.summary(e) for e in v[:self.n_examples]]}
                for c, v in found.items() if c in self.applicable()}
        pairs = Counter((e["reference"], e["predicted_label"]) for e in found["wrong_label"])
        return {"n": n, "categories": cats,
                "confused_pairs": [{"gold": g, "predicted": p, "count": k} for (g, p), k in pairs.most_common(10)],
                "worst": {m: self.worst(m) for m in self.worst_metrics()}}

    def applicable(self) -> tuple[str, ...]:
        """The categories that make sense for this data."""
        if self.labels:
            return tuple(c for c in CATEGORIES if c != "different_language")
        return tuple(c for c in CATEGORIES if c not in ("label_not_in_set", "wrong_label"))

    def worst_metrics(self) -> tuple[str, ...]:
        """Per-example metrics to rank by."""
        return ("correct", "token_f1") if self.labels else ("token_f1", "rouge_l", "bleu")

    def worst(self, metric: str, k: Optional[int] = None) -> list[dict]:
        """The k examples with the lowest ``metric`` (stable: ties keep data order)."""
        have = [e for e in self.examples if e.get(metric) is not None]
        ranked = sorted(have, key=lambda e: float(e[metric]))
        return [dict(self.summary(e), value=float(e[metric])) for e in ranked[:k or self.n_examples]]

    @staticmethod
    def summary(ex: dict) -> dict:
        """Prompt, reference and answer of one example (what a reader needs to judge it)."""
        out = {"index": ex.get("index"), "prompt": last_user_text(ex.get("messages") or []),
               "reference": ex.get("reference"), "answer": ex.get("answer")}
        if "predicted_label" in ex:
            out["predicted_label"] = ex["predicted_label"]
        return out
